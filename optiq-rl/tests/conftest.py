"""Fixtures the optiq-rl tests share: the DeepMimic character file and clips from the real data folder."""

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
