"""Any MJCF as a character: Gymnasium's Humanoid-v5 body by path, a generated MJCF read back whole from its custom
fields, and an MJCF MuJoCo cannot load reported in one line."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest
from optiq_rl.characters import CharacterError, character, character_names

HUMANOID_V5 = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml"


def test_gymnasium_humanoid_by_path():
    char = character(HUMANOID_V5)
    m = char.model()
    assert char.name == "humanoid" and char.joint_names[0] == "torso" and len(char.joint_names) == m.nbody - 1
    assert m.nu == 17
    # humanoid.xml: motors with gear 100 (hip_y 300, knees 200) and ctrlrange -0.4..0.4: torque = gear x 0.4.
    limits = dict(zip(char.actuator_names(), char.torque_limits, strict=True))
    assert limits["abdomen_y"] == pytest.approx(40.0) and limits["right_hip_y"] == pytest.approx(120.0)
    assert char.kp == pytest.approx(2.0 * char.torque_limits) and char.kd == pytest.approx(char.kp / 10)
    assert char.fall_bodies == () and char.forward == 0.0  # no optiq_forward: it faces +x, as Gymnasium's walks


def test_generated_mjcf_reads_back_whole(tmp_path):
    built = character("deepmimic")
    path = built.save(tmp_path / "body.xml")
    back = character(path)
    assert back.name == "body" and back.joint_names == built.joint_names
    assert np.array_equal(back.kp, built.kp) and np.array_equal(back.kd, built.kd)
    assert np.array_equal(back.torque_limits, built.torque_limits) and back.fall_bodies == built.fall_bodies
    assert back.model().nq == built.model().nq and back.forward == pytest.approx(built.forward, abs=1e-8)  # 9 digits


def test_mjcf_that_does_not_load(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<mujoco><worldbody><body name="a"><joint type="ball"/></body></worldbody></mujoco>')
    with pytest.raises(CharacterError) as info:
        character(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: MuJoCo cannot load it: ") and "\n" not in message
    assert "mass and inertia of moving bodies must be larger than mjMINVAL" in message
    with pytest.raises(CharacterError, match="MJCF file does not exist"):
        character(tmp_path / "missing.xml")


def test_registered_names():
    assert "deepmimic" in character_names()
    with pytest.raises(CharacterError, match="unknown character 'robot'; registered: .*deepmimic"):
        character("robot")
