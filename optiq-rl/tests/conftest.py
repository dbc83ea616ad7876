"""Fixtures the optiq-rl tests share: the DeepMimic character file and clips from the real data folder, the
optiq CLI, and ``fails`` (a command's bad input is one line, exit code 2, nothing written)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def character_file(data_dir):
    return data_dir / "deepmimic" / "humanoid3d_character.txt"


@pytest.fixture(scope="session")
def deepmimic_clips(data_dir, character_file):
    """The DeepMimic walk, run and a long walk (3,936 frames at 120 fps), loaded with optiq's DeepMimic loader."""
    import optiq

    files = [data_dir / "deepmimic" / "humanoid3d_walk.txt", data_dir / "deepmimic" / "humanoid3d_run.txt",
             data_dir / "corpora" / "deepmimic_more" / "long" / "humanoid3d_long_walk1.txt"]
    return [optiq.load_clip(f, character=character_file) for f in files]


@pytest.fixture(scope="session")
def mimickit():
    """DeepMimic joint -> body of MimicKit's humanoid (data/mjcf/mimickit/humanoid.xml: X forward, Y left, Z up),
    and the rotation from optiq's DeepMimic axes (the loader's: X right, Y forward, Z up) to MimicKit's."""
    import numpy as np

    names = {"root": "pelvis", "chest": "torso", "neck": "head", "right_hip": "right_thigh",
             "right_knee": "right_shin", "right_ankle": "right_foot", "right_shoulder": "right_upper_arm",
             "right_elbow": "right_lower_arm", "right_wrist": "right_hand", "left_hip": "left_thigh",
             "left_knee": "left_shin", "left_ankle": "left_foot", "left_shoulder": "left_upper_arm",
             "left_elbow": "left_lower_arm", "left_wrist": "left_hand"}
    return names, np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="session")
def cli():
    from optiq.cli.main import build_cli

    return build_cli()


@pytest.fixture(scope="session")
def fails(cli):
    """``fails(args, message, out=None)``: run ``optiq args``; assert exit code 2, one stderr line ``optiq: error:
    ...`` containing ``message``, and (``out`` given) no output file nor a partial one beside it; the line."""
    from click.testing import CliRunner

    def run(args, message, out=None):
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("optiq: error: "), lines
        assert message in lines[0], lines[0]
        if out is not None:
            assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
        return lines[0]

    return run


@pytest.fixture(scope="session")
def ground_gap():
    """``ground_gap(model)``: the smallest signed distance (m) between the character's geoms and the floor at
    ``qpos0``, by MuJoCo's own collision detection (contacts reported within a 5 cm margin, on a copy of the
    model): an independent check of optiq's lowest-point geometry, which placed the body."""
    import copy

    import mujoco

    def gap(model) -> float:
        m = copy.copy(model)
        m.geom_margin[:] = 0.05
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        assert d.ncon > 0, "no geom within 5 cm of the floor"
        return float(d.contact.dist[:d.ncon].min())

    return gap


@pytest.fixture(scope="session")
def amp_humanoid(data_dir, tmp_path_factory):
    """IsaacGymEnvs' AMP humanoid as a character, its one undefined material reference (the floor's ``grid``)
    stripped."""
    from optiq_rl.characters import character

    text = (data_dir / "mjcf" / "isaacgymenvs" / "amp_humanoid.xml").read_text()
    path = tmp_path_factory.mktemp("amp") / "amp_humanoid.xml"
    path.write_text(text.replace(' material="grid"', ""))
    return character(path)
