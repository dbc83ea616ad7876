"""Length unit and up axis: guessed from the motion as well as the rest pose, refused when impossible, kept true
after ``--scale``; Euler conversion at gimbal lock stays silent.

Independent facts used here: a standing person's head is above their feet along the up axis; Drillis & Contini's
segment proportions (Winter, *Biomechanics and Motor Control of Human Movement*, fig. 4.1) put thigh + shank
(hip to ankle) at 0.245 + 0.246 = 0.491 of the body height.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from optiq import quat
from optiq.axes import UnitError, UnitGuessWarning, guess_units, length_scale, scaled_unit
from optiq.cli.main import build_cli
from optiq.convert import ConvertOptions, load_file
from optiq.errors import OptiqError, ParseError
from optiq.loaders.amp_npy import load_amp_npy
from optiq.loaders.asf_amc import load_amc
from optiq.loaders.bvh import load_bvh
from optiq.loaders.bvh_write import write_bvh

LEG_FRACTION = 0.491  # hip to ankle / body height (Drillis & Contini)


def load_quietly(loader, path, **options):
    """The clips and the UnitGuessWarnings a load gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = loader(path, **options)
    return clips, [w for w in caught if issubclass(w.category, UnitGuessWarning)]


def stature(clip, hip: str, knee: str, ankle: str) -> float:
    """Body height (m) from the median thigh + shank length of ``clip`` (Drillis & Contini)."""
    pos = clip.world_positions()
    idx = [clip.skeleton.index(n) for n in (hip, knee, ankle)]
    legs = np.linalg.norm(np.diff(pos[:, idx], axis=1), axis=-1).sum(axis=1)
    return float(np.median(legs)) / LEG_FRACTION


def head_above_feet(clip, head: str, feet: tuple[str, ...]) -> np.ndarray:
    """Per frame, how far (m, optiq Z) the head joint is above the lower of ``feet``."""
    pos = clip.world_positions()
    top = pos[:, clip.skeleton.index(head), 2]
    return top - pos[:, [clip.skeleton.index(f) for f in feet], 2].min(axis=1)


# --- the motion decides -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bandai(data_dir):
    files = sorted((data_dir / "corpora" / "bandai_namco" / "data").glob("*.bvh"))
    if len(files) != 158:
        pytest.skip(f"expected the 158 Bandai-Namco takes, found {len(files)}")
    return files


def test_every_bandai_namco_take_is_centimetres_y_up(bandai):
    """The corpus is centimetres, Y up. Its rest skeleton lies along X and its joint_Root stays at the origin, so
    the rest pose guessed inch (a 3.4 m person) or Z up (lying flat); the motion shows a standing person.
    All 158 takes load in about 2 s."""
    wrong = []
    for path in bandai:
        (clip,), caught = load_quietly(load_bvh, path)
        height = stature(clip, "UpperLeg_L", "LowerLeg_L", "Foot_L")
        standing = np.median(head_above_feet(clip, "Head", ("Foot_L", "Foot_R")))
        if (clip.labels["length_unit"], clip.labels["up"]) != ("cm", "y") or not 1.4 <= height <= 2.0 \
                or standing < 1.0 or caught:
            wrong.append((path.name, clip.labels["length_unit"], clip.labels["up"], round(height, 2), standing,
                          [str(w.message) for w in caught]))
    assert not wrong, wrong


def test_iclone_takes_with_a_turned_bone_root_stand_up(data_dir):
    """Three CMU iClone takes of subject 2 have an extra RL_BoneRoot whose rest pose does not stand along Y; the
    rest-pose guess made them Z up, lying flat. Their motion stands along Y like the subject's other takes."""
    folder = data_dir / "corpora" / "cmu_iclone"
    for name in ("002_01.bvh", "002_02.bvh", "002_03.bvh", "002_04.bvh"):
        path = next(folder.rglob(name))
        (clip,), caught = load_quietly(load_bvh, path)
        assert (clip.labels["up"], clip.labels["length_unit"]) == ("y", "cm"), name
        assert np.median(head_above_feet(clip, "CC_Base_Head", ("CC_Base_L_Foot", "CC_Base_R_Foot"))) > 1.2
        assert 1.4 <= stature(clip, "CC_Base_L_Thigh", "CC_Base_L_Calf", "CC_Base_L_Foot") <= 2.0
        assert not caught


@pytest.fixture(scope="module")
def cmu_raw(data_dir):
    """CMU 02_01 (cgspeed BVH: CMU units, Y up) as the file holds it: file axes and units."""
    return load_bvh(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh", unit=1.0, up="z")[0]


def test_motion_standing_along_another_axis_than_the_rest_pose_wins_and_warns(cmu_raw):
    """The whole motion turned by +90 degrees about X (the root's rotation and translation; file Y -> Z) while the
    rest pose still stands along Y: the file's motion is Z up. The rest-pose guess said Y (lying flat)."""
    turn = quat.from_axis_angle(np.array([1.0, 0.0, 0.0]), np.pi / 2)
    rot = cmu_raw.rotations.copy()
    rot[:, 0] = quat.qmul(turn, rot[:, 0])
    turned = cmu_raw.replace(rotations=rot, root_translation=quat.rotate(turn, cmu_raw.root_translation))
    with pytest.warns(UnitGuessWarning, match=r"x\.bvh: guessed up axis z from the motion, though the rest pose "
                                              r"stands along y; pass up=y to override"):
        up, scale, unit = guess_units(turned, path="x.bvh")
    assert (up, unit) == ("z", "cmu")
    assert guess_units(cmu_raw) == ("y", pytest.approx(0.0254 / 0.45), "cmu")


def test_small_rest_skeleton_does_not_make_a_giant(cmu_raw):
    """A rest skeleton ten times smaller than the body that moves (the file animates every joint's translation):
    the rest pose alone says metres (a 3 m person); the motion says CMU units, and the disagreement is reported."""
    animated = cmu_raw.replace(local_translations=np.broadcast_to(cmu_raw.skeleton.offsets,
                                                                  (cmu_raw.num_frames, cmu_raw.num_joints, 3)).copy(),
                               skeleton=cmu_raw.skeleton.transformed(np.eye(3), 0.1))
    assert length_scale("auto", np.ptp(animated.skeleton.rest_positions()[:, 1]))[1] == "m"  # the old guess
    with pytest.warns(UnitGuessWarning, match=r"guessed length unit cmu from the motion .* though the rest pose "
                                              r"suggests m .*pass --unit"):
        assert guess_units(animated, path="x.bvh")[1:] == (pytest.approx(0.0254 / 0.45), "cmu")


def test_the_rest_pose_decides_when_the_motion_does_not_stand(cmu_raw):
    """Every frame lying on its back (turned -90 degrees about X: head along file -Z): the motion stands along no
    axis, the standing rest pose decides without a warning."""
    turn = quat.from_axis_angle(np.array([1.0, 0.0, 0.0]), -np.pi / 2)
    rot = cmu_raw.rotations.copy()
    rot[:, 0] = quat.qmul(turn, rot[:, 0])
    lying = cmu_raw.replace(rotations=rot, root_translation=quat.rotate(turn, cmu_raw.root_translation))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitGuessWarning)
        assert guess_units(lying)[0] == "y"


# --- every guessing loader takes unit= and up= -------------------------------------------------------------------
@pytest.mark.parametrize("loader, rel", [(load_bvh, "corpora/bandai_namco/data/dataset-1_walk_old_001.bvh"),
                                         (load_amc, "asf_amc/cmu_02_01_walk.amc"),
                                         (load_amp_npy, "npy/amp/amp_humanoid_walk.npy")])
def test_guessing_loaders_take_unit_and_up(data_dir, loader, rel):
    """What a conversion agreed on (unit=, up=) is what the clip gets, with no guess and no warning; lengths scale
    by the ratio of the units (inch / mm = 25.4)."""
    (guessed,), _ = load_quietly(loader, data_dir / rel)
    (inch,), caught = load_quietly(loader, data_dir / rel, unit="inch", up="z")
    (mm,), _ = load_quietly(loader, data_dir / rel, unit="mm", up="z")
    assert (inch.labels["length_unit"], inch.labels["up"]) == ("inch", "z") and not caught
    np.testing.assert_allclose(inch.world_positions(), 25.4 * mm.world_positions(), rtol=1e-12, atol=1e-12)
    assert guessed.labels["up"] in ("y", "z")


# --- impossible units ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", [0, -0.01, float("nan"), float("inf"), "0", "-2.54", "nan", "-inf", "0 m"])
def test_zero_negative_and_non_finite_units_are_refused(unit):
    with pytest.raises(UnitError, match="length unit must be a positive, finite number"):
        length_scale(unit)
    assert issubclass(UnitError, ValueError) and issubclass(UnitError, OptiqError)


@pytest.mark.parametrize("unit", ["0", "-1", "nan"])
def test_cli_refuses_an_impossible_unit_in_one_line(data_dir, tmp_path, unit):
    """--unit 0 collapsed the skeleton to a point, a negative unit turned it upside down: now one line naming the
    file, exit 2, nothing written."""
    src = data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh"
    out = tmp_path / "ds.parquet"
    result = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(src), "--out", str(out),
                                              "--unit", unit, "--jobs", "1"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"optiq: error: {src}: length unit must be a positive"), lines
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_loader_names_the_file_of_an_impossible_unit(data_dir):
    path = data_dir / "asf_amc" / "cmu_02_01_walk.amc"
    with pytest.raises(ParseError, match=f"^{path}: length unit must be a positive"):
        load_amc(path, unit=-1)
    path = data_dir / "bvh" / "sfu_0005_Walking001.bvh"
    with pytest.raises(ParseError, match=f"^{path}: length unit must be a positive"):
        load_bvh(path, unit=0.0)


# --- length_unit after --scale -------------------------------------------------------------------------------------
def test_length_unit_after_scale_says_what_the_file_unit_now_is(data_dir):
    """length_unit is one unit of the source file in metres. A centimetre BVH read as metres and scaled by 0.01
    holds what reading it as centimetres gives, and says cm; CMU units read as cm and scaled by 5.6444 are cmu."""
    path = data_dir / "bvh" / "pybvh_test2_YXZ.bvh"
    (as_cm,) = load_file(path, ConvertOptions(unit="cm"))
    (scaled,) = load_file(path, ConvertOptions(unit="m", scale=0.01))
    assert scaled.labels["length_unit"] == as_cm.labels["length_unit"] == "cm"
    np.testing.assert_allclose(scaled.world_positions(), as_cm.world_positions(), rtol=1e-12, atol=1e-15)
    assert scaled_unit("cm", 2.54 / 0.45) == "cmu"
    assert scaled_unit(None, 0.5) == "0.5 m"
    assert length_scale(scaled_unit("inch", 3.0))[0] == pytest.approx(0.0762, rel=1e-12)
    with pytest.raises(UnitError, match="scale must be a positive, finite number, got -2"):
        scaled_unit("cm", -2.0)


def test_export_after_scale_gives_back_the_file_numbers(data_dir, tmp_path):
    """Written in its length_unit label, a scaled clip's BVH holds the source file's OFFSET numbers again."""
    path = data_dir / "bvh" / "pybvh_test2_YXZ.bvh"
    (scaled,) = load_file(path, ConvertOptions(unit="m", scale=0.01))
    write_bvh(scaled, tmp_path / "back.bvh", unit=scaled.labels["length_unit"], up="y")
    offsets = [ln.split()[1:] for ln in (tmp_path / "back.bvh").read_text().splitlines()
               if ln.strip().startswith("OFFSET")]
    source = [ln.split()[1:] for ln in path.read_text().splitlines() if ln.strip().startswith("OFFSET")]
    np.testing.assert_allclose(np.array(offsets, float), np.array(source, float), atol=1e-6)


# --- gimbal lock ---------------------------------------------------------------------------------------------------
def test_to_euler_at_gimbal_lock_is_silent_and_exact():
    """scipy warns ("Gimbal lock detected") when the middle angle is +-90 degrees; the angles it gives still
    compose to the same rotation, so to_euler keeps them and the warning."""
    q = quat.from_euler(np.array([[10.0, 90.0, 20.0], [-30.0, -90.0, 5.0]]), "ZYX", degrees=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        angles = quat.to_euler(q, "ZYX")
    assert quat.angle_between(quat.from_euler(angles, "ZYX"), q).max() < 1e-7


def test_exporting_an_iclone_take_gives_no_gimbal_warning(data_dir, tmp_path):
    """CMU iClone take 005_06 has joints at 90 degrees about the middle Euler axis: its BVH export raised five
    scipy gimbal-lock warnings. Now none, and the export reads back with the same world positions."""
    path = next((data_dir / "corpora" / "cmu_iclone").rglob("005_06.bvh"))
    (clip,) = load_bvh(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_bvh(clip, tmp_path / "back.bvh")
    (back,) = load_bvh(tmp_path / "back.bvh")
    np.testing.assert_allclose(back.world_positions(), clip.world_positions(), atol=2e-5)
