"""Control of the DeepMimic humanoid: PD torques against a hand-computed PD law, SPD stable at gains where
plain PD explodes, PD holding a target, torque mode, and actions turned into PD targets."""

from __future__ import annotations

import copy
from pathlib import Path

import mujoco
import numpy as np
import optiq
import pytest
from optiq import quat
from optiq.errors import OptiqError
from optiq_rl.characters import character
from optiq_rl.envs.control import ActionMap, Controller
from optiq_rl.retarget import clip_to_qpos


@pytest.fixture(scope="module")
def walk(data_dir):
    char = character("deepmimic")
    qpos, qvel = clip_to_qpos(optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt"), char)
    return char, qpos, qvel


def _model(char, hz: float, gravity: bool = True):
    m = copy.copy(char.model())
    m.opt.timestep = 1.0 / hz
    if not gravity:
        m.opt.gravity[:] = 0.0
    return m


def _joint(m, name):
    j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
    return m.jnt_qposadr[j], m.jnt_dofadr[j]


def test_pd_torques_follow_the_pd_law(walk):
    """Ball joint: kp * rotvec(q^-1 q_target) (body frame) - kd * qdot, from optiq's own quaternion code."""
    char, qpos, qvel = walk
    m = _model(char, 600)
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = qpos[5], qvel[5]
    ctl = Controller(char, m, "pd", clip_torques=False)
    ctl.set_target(qpos[20])
    tau = ctl.pd_torques(d)
    qa, va = _joint(m, "chest")
    err = quat.to_rotvec(quat.qmul(quat.conj(qpos[5, qa:qa + 4]), qpos[20, qa:qa + 4]))
    names = char.actuator_names()
    chest = [names.index(f"chest_{a}") for a in "xyz"]
    assert tau[chest] == pytest.approx(1000.0 * err - 100.0 * qvel[5, va:va + 3], rel=1e-9, abs=1e-9)
    qa, va = _joint(m, "right_knee")
    knee = names.index("right_knee")
    assert tau[knee] == pytest.approx(500.0 * (qpos[20, qa] - qpos[5, qa]) - 50.0 * qvel[5, va], rel=1e-9)
    ctl = Controller(char, m, "pd")
    ctl.set_target(qpos[20])
    clipped = ctl.pd_torques(d)
    assert np.all(np.abs(clipped) <= char.torque_limits + 1e-12)
    assert clipped == pytest.approx(np.clip(tau, -char.torque_limits, char.torque_limits))


def _hold(char, qpos, qvel, mode: str, hz: float, gain: float, seconds: float = 1.0):
    """Hold the walk's frame 10 from that frame for ``seconds`` at a physics rate of ``hz``; the MjData after."""
    m = _model(char, hz)
    m.actuator_ctrllimited[:] = 0  # MuJoCo would clamp the motors' ctrl to their ranges otherwise
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = qpos[10], qvel[10]
    ctl = Controller(char, m, mode, gain_scale=gain, clip_torques=False)
    ctl.set_target(qpos[10])
    substeps = int(hz // 30)
    with np.errstate(all="ignore"):
        for _ in range(int(seconds * 30)):
            ctl.step(d, substeps)
    return d


@pytest.fixture
def mujoco_warnings():
    """MuJoCo's warnings collected in a list instead of written to MUJOCO_LOG.TXT in the working directory."""
    caught, before = [], mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(caught.append)
    yield caught
    mujoco.set_mju_user_warning(before)


def test_spd_is_stable_where_pd_explodes(walk, mujoco_warnings):
    """Gains x10 at a 120 Hz physics step, torques unclipped (clipping bounds the torques and hides the
    instability): PD's accelerations blow up (MuJoCo flags them and resets), SPD holds the body."""
    char, qpos, qvel = walk
    pd = _hold(char, qpos, qvel, "pd", 120, 10.0)
    spd = _hold(char, qpos, qvel, "spd", 120, 10.0)
    bad = mujoco.mjtWarning.mjWARN_BADQACC
    assert pd.warning[bad].number > 0
    assert spd.warning[bad].number == 0
    assert mujoco_warnings and all("simulation is unstable" in w for w in mujoco_warnings)
    assert np.isfinite(spd.qvel).all() and np.abs(spd.qvel).max() < 5.0


@pytest.mark.parametrize(("mode", "hz", "tolerance"), [("pd", 2400, 1e-3), ("spd", 600, 1e-3), ("pd", 600, None),
                                                      ("implicit_pd", 600, 1e-3)])
def test_pd_holds_a_target(walk, mode, hz, tolerance):
    """No gravity, the root pinned 2 m up in the air (its state put back every control step): from the rest
    pose, PD brings every joint to the walk's frame 10 pose. With DeepMimic's gains plain PD needs a 2400 Hz
    physics step: at 600 Hz the chest's damping alone overshoots (kd dt / I > 2) and it chatters between its
    torque limits; SPD holds at 600 Hz."""
    char, qpos, _ = walk
    m = _model(char, hz, gravity=False)
    d = mujoco.MjData(m)
    d.qpos[2] += 2.0
    ctl = Controller(char, m, mode)
    ctl.set_target(qpos[10])
    before = np.zeros(m.nv)
    mujoco.mj_differentiatePos(m, before, 1.0, d.qpos, qpos[10])
    root = d.qpos[:7].copy()
    for _ in range(60):
        ctl.step(d, hz // 30)
        d.qpos[:7], d.qvel[:6] = root, 0.0
    err = np.zeros(m.nv)
    mujoco.mj_differentiatePos(m, err, 1.0, d.qpos, qpos[10])
    assert np.abs(before[6:]).max() > 0.5
    if tolerance is None:
        assert np.abs(err[6:]).max() > 0.1 and np.abs(d.qvel[6:]).max() > 2.0
    else:
        assert np.abs(err[6:]).max() < tolerance  # radians, every joint dof


def test_torque_mode_applies_scaled_limits(walk):
    char, qpos, qvel = walk
    m = _model(char, 600)
    d = mujoco.MjData(m)
    d.qpos[:] = qpos[0]
    ctl = Controller(char, m, "torque")
    action = np.linspace(-2.0, 2.0, m.nu)
    ctl.set_torque(action)
    ctl.step(d, 2)
    assert d.ctrl == pytest.approx(np.clip(action, -1, 1) * char.torque_limits)
    assert d.qfrc_actuator[char.actuator_dofs()] == pytest.approx(d.ctrl)


def test_action_map(walk):
    char, qpos, _ = walk
    m = char.model()
    residual = ActionMap(char, m, "residual", residual_scale=0.5)
    assert residual.target(np.zeros(m.nu), qpos[3])[7:] == pytest.approx(qpos[3, 7:])
    a = np.zeros(m.nu)
    names = char.actuator_names()
    a[names.index("chest_y")] = 0.4
    a[names.index("right_knee")] = -1.0
    t = residual.target(a, qpos[3])
    qa, _ = _joint(m, "chest")
    expect = quat.qmul(qpos[3, qa:qa + 4], quat.from_rotvec(np.array([0.0, 0.2, 0.0])))
    assert t[qa:qa + 4] == pytest.approx(expect, abs=1e-12)
    ka, _ = _joint(m, "right_knee")
    assert t[ka] == pytest.approx(qpos[3, ka] - 0.5)
    absolute = ActionMap(char, m, "absolute").target(np.zeros(m.nu))
    assert absolute[qa:qa + 4] == pytest.approx([1, 0, 0, 0])
    assert absolute[ka] == pytest.approx(-1.57)  # the middle of the knee's range -3.14..0
    with pytest.raises(OptiqError, match="action mode 'relative' is unknown"):
        ActionMap(char, m, "relative")
    with pytest.raises(OptiqError, match="control mode 'pid' is unknown"):
        Controller(char, m, "pid")


def test_spd_torques_follow_tan_et_al(walk):
    """SPD against the formula solved with numpy: (M + kd dt) qddot = -C - kp (q + dt qdot - q_target) - kd qdot,
    tau = -kp (q + dt qdot - q_target) - kd (qdot + dt qddot), on the actuated dofs."""
    char, qpos, qvel = walk
    m = _model(char, 600)
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = qpos[5], qvel[5]
    mujoco.mj_step1(m, d)
    ctl = Controller(char, m, "spd", clip_torques=False)
    ctl.set_target(qpos[20])
    tau = ctl.spd_torques(d)
    dt, dofs = m.opt.timestep, char.actuator_dofs()
    kp, kd = np.zeros(m.nv), np.zeros(m.nv)
    kp[dofs], kd[dofs] = char.kp, char.kd
    err = np.zeros(m.nv)
    mujoco.mj_differentiatePos(m, err, 1.0, qpos[5], qpos[20])
    mass = np.zeros((m.nv, m.nv))
    mujoco.mj_fullM(m, d, mass) if not hasattr(d, "qM") else mujoco.mj_fullM(m, mass, d.qM)
    p = kp * (err - dt * qvel[5])
    qacc = np.linalg.solve(mass + np.diag(kd * dt), p - kd * qvel[5] - d.qfrc_bias + d.qfrc_passive)
    assert tau == pytest.approx((p - kd * (qvel[5] + dt * qacc))[dofs], rel=1e-9, abs=1e-9)


def test_spd_equals_mujoco_implicit_damping(walk):
    """An independent check of SPD: unclipped and without contacts, SPD's torque is the same motion as a motor
    giving ``kp (err - dt qdot)`` with ``kd`` as MuJoCo joint damping, which MuJoCo's Euler integrator treats
    implicitly, ``(M + dt kd) qacc = f - kd qdot``: both bodies agree to rounding over 40 substeps in the air."""
    char, qpos, qvel = walk
    dofs = char.actuator_dofs()
    spd_model, damped = _model(char, 600), _model(char, 600)
    for m in (spd_model, damped):
        m.actuator_ctrllimited[:] = 0
    damped.dof_damping[dofs] = char.kd
    a, b = mujoco.MjData(spd_model), mujoco.MjData(damped)
    for d in (a, b):
        d.qpos[:], d.qvel[:] = qpos[3], qvel[3]
        d.qpos[2] += 1.0  # in the air: no contact
    ctl = Controller(char, spd_model, "spd", clip_torques=False)
    ctl.set_target(qpos[20])
    err, kp = np.zeros(damped.nv), np.zeros(damped.nv)
    kp[dofs] = char.kp
    for _ in range(40):
        ctl.step(a, 1)
        mujoco.mj_differentiatePos(damped, err, 1.0, b.qpos, qpos[20])
        b.ctrl[:] = (kp * (err - damped.opt.timestep * b.qvel))[dofs]
        mujoco.mj_step(damped, b)
    assert np.abs(a.qvel).max() > 1.0  # it moved
    assert np.abs(a.qpos - b.qpos).max() < 1e-10 and np.abs(a.qvel - b.qvel).max() < 1e-9  # measured 6e-17, 2e-15


@pytest.mark.parametrize("mode", ["pd", "torque"])
def test_geared_motors_get_torque_over_gear(mode):
    """Humanoid-v5's motors have gears of 25-100 (ctrlrange +-0.4): MuJoCo's generalized actuator force on each
    dof (``qfrc_actuator``, gear x ctrl) is the torque the controller asked for, not gear times it."""
    import gymnasium

    char = character(Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml")
    m = _model(char, 600, gravity=False)
    assert m.actuator_gear[:, 0].max() >= 100.0
    d = mujoco.MjData(m)
    d.qpos[2] += 1.0  # in the air: no contact
    ctl = Controller(char, m, mode)
    dofs = char.actuator_dofs()
    if mode == "torque":
        action = np.linspace(-0.9, 0.9, m.nu)
        ctl.set_torque(action)
        want = action * char.torque_limits
    else:
        target, bend = m.qpos0.copy(), np.zeros(m.nv)
        bend[dofs] = 0.02  # small errors: torques well inside the limits (kp 2 x limit: 4% of each)
        mujoco.mj_integratePos(m, target, bend, 1.0)
        ctl.set_target(target)
        want = ctl.pd_torques(d)
        assert (np.abs(want) < 0.1 * char.torque_limits).all()  # inside the limits: nothing clipped
    ctl.step(d, 1)
    mujoco.mj_forward(m, d)  # qfrc_actuator of the ctrl the step left
    assert d.qfrc_actuator[dofs] == pytest.approx(want, rel=1e-9, abs=1e-12)


def _humanoid_v5():
    import gymnasium

    return character(Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml")


@pytest.mark.parametrize("body", ["deepmimic", "Humanoid-v5"])
def test_implicit_pd_targets_are_mujocos_actuator_lengths(walk, body):
    """``implicit_pd`` hands the control law to MuJoCo's position actuators: with the body put at the target pose,
    MuJoCo's own transmission gives actuator lengths equal to the ctrl the controller set (zero PD error), for
    unit gears and Humanoid-v5's gears of 25-100; the integrator is implicitfast."""
    char, qpos, _ = walk
    if body == "deepmimic":
        target = qpos[20]
    else:
        char = _humanoid_v5()
        target, bend = char.model().qpos0.copy(), np.zeros(char.model().nv)
        bend[char.actuator_dofs()] = np.linspace(-0.3, 0.3, char.model().nu)
        mujoco.mj_integratePos(char.model(), target, bend, 1.0)
    m = _model(char, 600)
    ctl = Controller(char, m, "implicit_pd")
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert (char.model().actuator_biastype == mujoco.mjtBias.mjBIAS_NONE).all()  # the character's own: motors still
    d = mujoco.MjData(m)
    d.qpos[:] = target
    ctl.set_target(target)
    ctl._native.set_ctrl(ctl.target, d.ctrl)
    mujoco.mj_forward(m, d)
    assert np.abs(d.ctrl).max() > 0.1  # targets away from zero
    assert d.actuator_length == pytest.approx(d.ctrl, abs=1e-12)
    assert np.abs(d.qfrc_actuator[char.actuator_dofs()]).max() < 1e-9  # no error, no velocity: no torque


@pytest.mark.parametrize("body", ["deepmimic", "Humanoid-v5"])
def test_implicit_pd_is_the_pd_law(walk, body):
    """MuJoCo's actuator torques (``qfrc_actuator``, the joint-space result of its gains, gears and bias) against
    ``pd``'s law from the same state: hinges exactly; ball joints exactly ``kp (log q_target - log q) - kd qdot``
    (optiq's own rotation vectors), within 5% of ``pd``'s ``log(q^-1 q_target)`` law for a 0.05 rad bend of the
    walk's pose (the two agree to first order near the rest pose); limits respected."""
    char, qpos, qvel = walk
    q, v = qpos[5], qvel[5]
    if body != "deepmimic":
        char = _humanoid_v5()
        q, v = char.model().qpos0.copy(), np.zeros(char.model().nv)
        q[2] += 1.0
    dofs = char.actuator_dofs()
    target, bend = q.copy(), np.zeros(len(v))
    bend[dofs] = 0.05 * np.sign(np.sin(np.arange(len(dofs)) + 1.0))
    mujoco.mj_integratePos(char.model(), target, bend, 1.0)
    m, m_pd = _model(char, 600), _model(char, 600)
    ctl, pd = Controller(char, m, "implicit_pd", clip_torques=False), Controller(char, m_pd, "pd", clip_torques=False)
    d, d_pd = mujoco.MjData(m), mujoco.MjData(m_pd)
    for data, c in ((d, ctl), (d_pd, pd)):
        data.qpos[:], data.qvel[:] = q, v
        c.set_target(target)
    ctl._native.set_ctrl(ctl.target, d.ctrl)
    mujoco.mj_forward(m, d)
    want = pd.pd_torques(d_pd)
    got = d.qfrc_actuator[dofs]
    hinge = m.jnt_type[m.dof_jntid[dofs]] == mujoco.mjtJoint.mjJNT_HINGE
    assert got[hinge] == pytest.approx(want[hinge], rel=1e-9, abs=1e-9)
    for j in np.unique(m.dof_jntid[dofs][~hinge]):
        qa, va = m.jnt_qposadr[j], m.jnt_dofadr[j]
        err = quat.to_rotvec(target[qa:qa + 4]) - quat.to_rotvec(q[qa:qa + 4])
        k = np.flatnonzero(m.dof_jntid[dofs] == j)
        assert got[k] == pytest.approx(char.kp[k] * err - char.kd[k] * v[va:va + 3], rel=1e-9, abs=1e-9)
    if (~hinge).any():
        assert np.abs(got[~hinge] - want[~hinge]).max() < 0.05 * np.abs(want[~hinge]).max()  # measured 3.8%
    # Clipped: a large error saturates at the torque limits, which MuJoCo's forcerange enforces.
    ctl = Controller(char, _model(char, 600), "implicit_pd")
    big = q.copy()
    bend[dofs] = 1.0
    mujoco.mj_integratePos(char.model(), big, bend, 1.0)
    d = mujoco.MjData(ctl.model)
    d.qpos[:] = q
    ctl._native.set_ctrl(big, d.ctrl)
    mujoco.mj_forward(ctl.model, d)
    tau = d.qfrc_actuator[dofs]
    assert np.all(np.abs(tau) <= char.torque_limits + 1e-9)
    assert np.isclose(np.abs(tau), char.torque_limits).sum() > len(dofs) // 2


def test_implicit_pd_is_stable_where_pd_explodes(walk, mujoco_warnings):
    """As SPD: gains x10 at a 120 Hz physics step, unclipped, MuJoCo's implicit damping holds the body."""
    char, qpos, qvel = walk
    held = _hold(char, qpos, qvel, "implicit_pd", 120, 10.0)
    assert held.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == 0
    assert np.isfinite(held.qvel).all() and np.abs(held.qvel).max() < 5.0
