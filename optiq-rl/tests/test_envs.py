"""The environments on the DeepMimic humanoid and walk: Gymnasium's checker, registration, reference state
initialisation against the clip's own forward kinematics, observations equal to ``optiq.features``, rewards
at and away from the reference, termination, cyclic references, the reward schedule, and bad settings."""

from __future__ import annotations

import subprocess
import sys

import mujoco
import numpy as np
import optiq
import pytest
from gymnasium.utils.env_checker import check_env
from optiq.errors import OptiqError, SkeletonMismatchError
from optiq.features import featurize
from optiq_rl.envs.locomotion import LocomotionEnv
from optiq_rl.envs.rewards import PRESETS, RewardSchedule, SimState, TrackingReward
from optiq_rl.envs.sim import EnvConfigError
from optiq_rl.envs.track import TrackEnv


@pytest.fixture(scope="module")
def walk_file(data_dir):
    return data_dir / "deepmimic" / "humanoid3d_walk.txt"


@pytest.fixture(scope="module")
def walk(walk_file):
    return optiq.load_clip(walk_file)


@pytest.fixture(scope="module")
def env(walk_file):
    return TrackEnv(reference=str(walk_file))


@pytest.mark.filterwarnings("ignore:.*Box observation space")  # as Humanoid-v5's: unbounded
def test_check_env(walk_file):
    check_env(TrackEnv(reference=str(walk_file), max_seconds=1.0), skip_render_check=True)
    check_env(LocomotionEnv(max_seconds=1.0), skip_render_check=True)


def test_gymnasium_make_after_import(walk_file):
    """``import optiq_rl`` before gymnasium registers the ids once gymnasium is imported (a fresh process)."""
    code = ("import optiq_rl, sys; assert 'gymnasium' not in sys.modules; import gymnasium as gym; "
            f"e = gym.make('optiq/Track-v0', reference={str(walk_file)!r}); "
            "l = gym.make('optiq/Locomotion-v0'); print(e.observation_space.shape, l.action_space.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(731,)", "(28,)"]


def test_rsi_puts_the_bodies_on_the_reference(env, walk):
    """Bodies in MuJoCo after a reset on frame k == the clip's own forward kinematics at frame k."""
    order = [walk.skeleton.names.index(n) for n in env.sim.char.joint_names]
    fk = walk.world_positions()[:, order]
    for frame in (0, 7, 37):
        _, info = env.reset(options={"frame": frame})
        assert info["frame"] == frame
        pos = env.sim.body_state().pos
        assert np.abs(pos - fk[frame]).max() < 1e-6  # measured 4e-16 m
    starts = {env.reset(seed=s)[1]["frame"] for s in range(12)}
    assert len(starts) > 3 and max(starts) < walk.num_frames - 1  # random frames of the first cycle


def test_observation_is_featurize_of_the_clip(env, walk):
    """The body part of the observation after a reset on frame k equals ``featurize(walk)[k]`` (issue 11:
    adapter(sim state) == featurize(clip) to 1e-5), the reference part ``featurize(walk)[k + 1, k + 2, k + 3]``."""
    clip = walk.with_joint_order(env.sim.char.joint_names)
    rows = featurize(clip, env.sim.features.spec)
    f = env.sim.features.dim
    for frame in (1, 12, 30):
        obs, _ = env.reset(options={"frame": frame})
        assert np.abs(obs[:f] - rows[frame]).max() < 1e-5
        for i, k in enumerate((1, 2, 3)):
            assert np.abs(obs[f + i * f: f + (i + 1) * f] - rows[frame + k]).max() < 1e-5
        rel = obs[4 * f:].reshape(3, 5)  # the reference's root seen from the body's: on the clip itself
        yaw = 2 * np.arctan2(clip.rotations[:, 0, 3], clip.rotations[:, 0, 0])
        turn = np.array([[np.cos(yaw[frame]), np.sin(yaw[frame])], [-np.sin(yaw[frame]), np.cos(yaw[frame])]])
        step = clip.root_translation[frame + 1:frame + 4] - clip.root_translation[frame]
        assert np.abs(rel[:, :2] - step[:, :2] @ turn.T).max() < 1e-5
        assert np.abs(rel[:, 2] - step[:, 2]).max() < 1e-5
        assert np.abs(rel[:, 3] - np.cos(yaw[frame + 1:frame + 4] - yaw[frame])).max() < 1e-5
    # After a physics step too: the same row as featurize of the clip of the body's two last states.
    obs, *_ = env.step(np.zeros(env.action_space.shape))
    prev, now = env._prev, env._body
    two = env.sim.features.clip(np.stack((prev.pos, now.pos)), np.stack((prev.rot, now.rot)))
    assert np.abs(obs[:f] - featurize(two, env.sim.features.spec)[-1]).max() < 1e-5


@pytest.mark.parametrize("rotation", ["quat", "expmap"])
def test_observation_in_other_rotation_encodings_is_featurize(walk_file, walk, rotation):
    env = TrackEnv(reference=str(walk_file), rotation=rotation, max_seconds=1.0)
    clip = walk.with_joint_order(env.sim.char.joint_names)
    rows = featurize(clip, env.sim.features.spec)
    f = env.sim.features.dim
    assert f == rows.shape[1] and f != 179  # not the 6D layout
    for frame in (1, 30):
        obs, _ = env.reset(options={"frame": frame})
        assert np.abs(obs[:f] - rows[frame]).max() < 1e-5


def _state(env, qpos, qvel):
    """SimState of the character at qpos/qvel, through MuJoCo's kinematics."""
    sim = env.sim
    d = mujoco.MjData(sim.model)
    d.qpos[:], d.qvel[:] = qpos, qvel
    mujoco.mj_kinematics(sim.model, d)
    mujoco.mj_comPos(sim.model, d)
    pos = sim.features.body_state(d.xpos, d.xquat).pos
    return SimState(d.qpos.copy(), d.qvel.copy(), pos, d.subtree_com[sim.root_body].copy())


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("joint", ["right_knee", "chest"])
def test_reward_is_one_at_the_reference_and_falls_as_a_joint_bends(env, preset, joint):
    ref = env.references[0]
    reward = TrackingReward(env.sim.char, env.sim.model, preset)
    target = _state(env, ref.qpos[10], ref.qvel[10])
    at_ref = reward.rewards(reward.errors(target, target))
    assert reward.total(at_ref) == pytest.approx(1.0, abs=1e-12)
    m = env.sim.model
    j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, joint)
    totals = []
    for angle in (0.1, 0.3, 0.6, 1.0):
        bend = np.zeros(m.nv)
        bend[m.jnt_dofadr[j]] = -angle  # the knee bends further (range -3.14..0), the chest leans
        qpos = ref.qpos[10].copy()
        mujoco.mj_integratePos(m, qpos, bend, 1.0)
        errors = reward.errors(_state(env, qpos, ref.qvel[10]), target)
        expect = angle**2 * (0.6 if preset == "mimickit" and joint == "right_knee" else 1.0)
        assert errors["pose"] == pytest.approx(expect, rel=1e-9)
        totals.append(reward.total(reward.rewards(errors)))
    assert 1.0 > totals[0] > totals[1] > totals[2] > totals[3]


def test_mimickit_root_velocity_compares_world_frame_angular_velocities(env):
    """MimicKit compares root angular velocities in the world frame (its engines' root velocities are world-frame);
    MuJoCo's free joint holds them in the root's own frame. A root turned 90 degrees about the vertical (its x is
    the world's y, its y the world's -x) rolling about the world's x as fast as an unturned reference: no error,
    although their qvel differ; rolling about its own x as the reference does about its own: 0.1 x |(0, 0.5, 0) -
    (0.5, 0, 0)|^2, although their qvel agree."""
    ref = env.references[0]
    reward = TrackingReward(env.sim.char, env.sim.model, "mimickit")
    upright, turned = ref.qpos[10].copy(), ref.qpos[10].copy()
    upright[3:7] = [1.0, 0.0, 0.0, 0.0]
    turned[3:7] = [np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]
    nv = env.sim.model.nv
    own_x, own_minus_y = np.zeros(nv), np.zeros(nv)
    own_x[3], own_minus_y[4] = 0.5, -0.5
    target = _state(env, upright, own_x)  # rolls about the world's x
    assert reward.errors(target, target)["root_velocity"] == 0.0
    same = reward.errors(_state(env, turned, own_minus_y), target)["root_velocity"]
    assert same == pytest.approx(0.0, abs=1e-12)
    other = reward.errors(_state(env, turned, own_x), target)["root_velocity"]
    assert other == pytest.approx(0.1 * 0.5, rel=1e-12)


def test_step_logs_every_term(env):
    env.reset(seed=3)
    _, reward, _, _, info = env.step(np.zeros(env.action_space.shape))
    terms = ("pose", "velocity", "end_effector", "com", "task")
    assert reward == pytest.approx(sum(PRESETS["deepmimic"].weights[t] * info[f"reward_{t}"] for t in terms))
    assert all(f"error_{t}" in info for t in terms)
    assert 0.5 < reward <= 1.0 and info["body_error"] < 0.1


def test_termination_on_a_forced_fall(env):
    """The body laid face down, its root 0.1 m above the ground: root and chest touch it, a fall."""
    env.reset(options={"frame": 0})
    qpos = env.sim.data.qpos.copy()
    qpos[2] = 0.1
    qpos[3:7] = [np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0]  # 90 degrees about x: lying down
    env.sim.set_state(qpos, np.zeros(env.sim.model.nv))
    env._body = env.sim.body_state()
    _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape))
    assert terminated and not truncated and info["fell"]


def test_termination_when_the_body_strays(walk_file):
    env = TrackEnv(reference=str(walk_file), max_tracking_error=0.05, fall_termination=False)
    env.reset(options={"frame": 0})
    qpos = env.sim.data.qpos.copy()
    qpos[0] += 0.2  # the whole body 0.2 m to the side of the reference
    env.sim.set_state(qpos, env.references[0].qvel[0])
    _, _, terminated, _, info = env.step(np.zeros(env.action_space.shape))
    assert terminated and info["strayed"] and not info["fell"] and info["body_error"] > 0.15


def test_cyclic_reference_continues_with_the_root_moved_on(env, walk):
    """The walk (loop: wrap) repeats its cycle (38 frames) with the root moved on by the cycle's displacement."""
    ref = env.references[0]
    cycle = walk.num_frames - 1
    assert ref.cyclic and ref.starts == cycle and ref.num_frames >= cycle + env.max_steps + 4
    shift = walk.root_translation[-1] - walk.root_translation[0]
    shift[2] = 0.0
    assert np.abs(ref.pos[cycle:2 * cycle] - ref.pos[:cycle] - shift).max() < 1e-9
    assert np.abs(ref.pos[2 * cycle:3 * cycle] - ref.pos[:cycle] - 2 * shift).max() < 1e-9
    assert ref.velocity == pytest.approx(shift[:2] / walk.duration)
    # Started past the first cycle (options), the looped reference runs out before max_seconds: truncated there,
    # not held on its last frame.
    env.reset(options={"frame": ref.num_frames - 3})
    env.step(np.zeros(env.action_space.shape))
    _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape))
    assert info["frame"] == ref.num_frames - 1 and truncated and not terminated
    once = TrackEnv(reference=walk, cyclic=False)
    once.reset(options={"frame": cycle - 2})
    _, _, _, truncated, info = once.step(np.zeros(once.action_space.shape))
    assert not truncated
    _, _, terminated, truncated, info = once.step(np.zeros(once.action_space.shape))
    assert truncated and not terminated and info["frame"] == cycle


def test_reward_schedule_moves_from_tracking_to_task(walk):
    env = TrackEnv(reference=walk, reward_schedule="tracking_to_task")
    assert env.reward_fn.weights["pose"] == pytest.approx(0.65) and env.reward_fn.weights["task"] == 0.0
    env.set_progress(1 / 3)
    assert env.reward_fn.weights["pose"] == pytest.approx(0.325) and env.reward_fn.weights["task"] == 0.5
    env.set_progress(0.5)
    assert env.reward_fn.weights["pose"] == pytest.approx(0.65 * 0.3)
    env.set_progress(1.0)
    assert env.reward_fn.weights["pose"] == 0.0 and env.reward_fn.weights["task"] == 1.0
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(env.action_space.shape))
    assert reward == pytest.approx(info["reward_task"])
    custom = TrackEnv(reference=walk, reward_schedule=[(0.0, {"pose": 1.0}), (1.0, {"pose": 0.0})])
    custom.set_progress(0.25)
    assert custom.reward_fn.weights["pose"] == pytest.approx(0.75) and custom.reward_fn.weights["com"] == 0.1
    with pytest.raises(OptiqError, match="unknown term"):
        RewardSchedule([(0.0, {"posture": 1.0})], PRESETS["deepmimic"].weights)


def test_locomotion_terms_and_target(walk_file):
    env = LocomotionEnv(resample_seconds=0.2, init_reference=str(walk_file))
    obs, info = env.reset(seed=4)
    assert obs.shape == (env.sim.features.dim + 4,)
    first = info["target_velocity"]
    assert 0.5 <= np.hypot(*first) <= 1.5
    f = env.sim.features.dim
    root = env.sim.body_state().rot[0]
    yaw = 2 * np.arctan2(root[3], root[0])  # the target, seen in the body's heading frame, turned back to world
    c, s = np.cos(yaw), np.sin(yaw)
    assert np.array([[c, -s], [s, c]]) @ obs[f:f + 2] == pytest.approx(first, abs=1e-6)
    assert np.hypot(*obs[f + 2:f + 4]) == pytest.approx(1.0, abs=1e-6)
    # The target points where the body faces (the DeepMimic humanoid: +y at heading 0) turned to the target
    # heading, within heading_range of its facing now.
    def turn(a):  # an angle in (-pi, pi]
        return float(np.angle(np.exp(1j * a)))

    direction = np.arctan2(first[1], first[0])
    assert turn(direction - env.target_yaw - np.pi / 2) == pytest.approx(0.0, abs=1e-9)
    assert abs(turn(direction - yaw - np.pi / 2)) <= env.config.heading_range + 1e-9
    for _ in range(6):
        _, reward, terminated, _, info = env.step(np.zeros(env.action_space.shape))
        assert not terminated
    terms = ("velocity", "heading", "alive", "energy", "smoothness")
    assert reward == pytest.approx(sum(info[f"reward_{t}"] for t in terms))
    assert info["value_energy"] < 0 and info["value_smoothness"] <= 0
    assert np.allclose(info["target_velocity"], first)
    assert not np.allclose(env.target_velocity, first)  # resampled after 0.2 s (6 steps)


@pytest.mark.parametrize("control", ["pd", "implicit_pd"])
def test_locomotion_energy_is_the_motors_power(control):
    """The cost of transport from the joint torques MuJoCo applied: for ``pd`` the motors' ctrl (unit gears), for
    ``implicit_pd`` (whose ctrl is a target angle) the position actuators' force."""
    env = LocomotionEnv(character="deepmimic", control=control, physics_hz=2400.0 if control == "pd" else 600.0)
    env.reset(seed=3)
    for _ in range(3):
        _, _, _, _, info = env.step(np.full(env.action_space.shape, 0.3))
    d, ctl, sim = env.sim.data, env.sim.controller, env.sim
    force = d.ctrl if control == "pd" else d.actuator_force  # N m: unit gears
    power = np.abs(force * ctl.gear * d.qvel[ctl.dofs]).sum()
    speed = max(float(np.hypot(*d.qvel[:2])), env.config.min_speed)
    assert info["value_energy"] == pytest.approx(-power / (sim.mass * 9.81 * speed), rel=1e-9)
    assert info["value_energy"] < -1e-3  # the motors do work: a target angle is not a torque


def test_bad_settings(walk_file, data_dir):
    with pytest.raises(EnvConfigError, match="needs reference"):
        TrackEnv()
    with pytest.raises(EnvConfigError, match="unknown setting.*referense"):
        TrackEnv(referense=str(walk_file))
    with pytest.raises(EnvConfigError, match="whole multiple"):
        TrackEnv(reference=str(walk_file), physics_hz=100.0)
    with pytest.raises(EnvConfigError, match="frame 5000 is outside clip 'humanoid3d_walk'"):
        TrackEnv(reference=str(walk_file), max_seconds=1.0).reset(options={"frame": 5000})
    with pytest.raises(OptiqError, match="reward preset 'phc' is unknown"):
        TrackEnv(reference=str(walk_file), reward="phc")
    bvh = sorted((data_dir / "bvh").glob("*.bvh"))[:1] if (data_dir / "bvh").is_dir() else []
    if bvh:
        with pytest.raises(SkeletonMismatchError, match="does not fit character 'deepmimic'"):
            TrackEnv(reference=str(bvh[0]))


def test_references_from_a_dataset_sampled_by_weight(walk, data_dir, tmp_path):
    """Walk and run in one Parquet dataset: clips chosen by name, drawn by weight."""
    run = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_run.txt")
    path = tmp_path / "dm.parquet"
    optiq.write_dataset(path, [walk, run])
    env = TrackEnv(reference=str(path), weights=[0.0, 1.0], max_seconds=1.0)
    assert [r.name for r in env.references] == [walk.name, run.name]
    assert {env.reset(seed=s)[1]["clip"] for s in range(5)} == {run.name}
    only = TrackEnv(reference=str(path), clips=[walk.name], max_seconds=1.0)
    assert [r.name for r in only.references] == [walk.name]
    with pytest.raises(OptiqError, match="no clip jump"):
        TrackEnv(reference=str(path), clips=["jump"])
    with pytest.raises(EnvConfigError, match="one non-negative weight per clip"):
        TrackEnv(reference=str(path), weights=[1.0])


@pytest.mark.parametrize(("control", "action_mode", "reward"),
                         [("pd", "absolute", "deepmimic"), ("torque", "residual", "mimickit"),
                          ("spd", "residual", "mimickit"), ("implicit_pd", "residual", "deepmimic")])
def test_control_action_and_reward_modes_step(walk, control, action_mode, reward):
    env = TrackEnv(reference=walk, control=control, action_mode=action_mode, reward=reward, physics_hz=300.0,
                   max_seconds=1.0)
    assert env.sim.substeps == 10 and env.sim.model.opt.timestep == pytest.approx(1 / 300)
    env.reset(seed=1)
    env.action_space.seed(1)
    for _ in range(3):
        obs, r, terminated, _, info = env.step(0.2 * env.action_space.sample())  # full random torques blow up
        assert not info["unstable"]
        assert np.isfinite(obs).all() and 0.0 <= r <= 1.0
        if terminated:
            break
    terms = PRESETS[reward].weights
    assert r == pytest.approx(sum(w * info[f"reward_{t}"] for t, w in terms.items()))


@pytest.mark.filterwarnings("ignore:.*(DISPLAY|GLFW)")  # glfw, the default backend, without a display
def test_render_rgb_array(walk):
    """MuJoCo's offscreen renderer, the camera following the root; skipped where no OpenGL backend loads."""
    env = TrackEnv(reference=walk, render_mode="rgb_array", max_seconds=1.0)
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as exc:  # no EGL / OSMesa on this machine (MUJOCO_GL)
        pytest.skip(f"no OpenGL backend for MuJoCo's renderer: {exc}")
    finally:
        env.close()
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8 and frame.std() > 5  # not a blank image
    assert TrackEnv(reference=walk, max_seconds=1.0).render() is None
    with pytest.raises(EnvConfigError, match="render_mode 'human' is unknown"):
        TrackEnv(reference=walk, render_mode="human")


def test_track_a_bvh_performer_on_its_own_body(data_dir, tmp_path):
    """A CMU take (120 fps, resampled to 30) tracked on the body built from its own skeleton: RSI puts the bodies
    on the clip's forward kinematics, the key bodies are its end effectors, the clip (no loop) truncates."""
    clip = optiq.load_clip(data_dir / "bvh" / "cmu_01_14_bvhtodeepmimic.bvh")[:240]
    path = tmp_path / "cmu.parquet"
    optiq.write_dataset(path, [clip])
    env = TrackEnv(character=str(path), reference=str(path))
    names = env.sim.char.joint_names
    assert {names[k] for k in env.reward_fn.keys} >= {"Head", "LeftToeBase", "RightToeBase"}
    ref = env.references[0]
    assert not ref.cyclic and ref.num_frames == 60
    _, info = env.reset(seed=0)
    fk = clip.resample(30.0).world_positions()[:, [clip.skeleton.names.index(n) for n in names]]
    assert np.abs(env.sim.body_state().pos - fk[info["frame"]]).max() < 1e-6  # measured 7e-8 m (MJCF digits)
    env.reset(options={"frame": 57})
    env.step(np.zeros(env.action_space.shape))
    _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape))
    assert info["frame"] == 59 and truncated and not terminated  # the clip's last frame ends it, held upright
