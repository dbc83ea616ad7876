"""optiq-rl speed: control steps per second of ``optiq/Track-v0`` against a bare loop of ``mj_step`` with the
same MJCF and the same physics substeps per control step (issue 9, section 5; goal >= 0.8x).

Both sides start from the same reference frames of the DeepMimic walk (``$OPTIQ_TEST_DATA/deepmimic/
humanoid3d_walk.txt``) and run segments of control steps: the env with the zero action (PD held on the
reference; control, observations, rewards and termination checks as in training; early termination off so both
sides run whole segments), the bare loop ``mj_step`` ``substeps`` times per control step, replaying the torques
the env's controller applied at every substep (recorded in an untimed run of the same segment), so both sides
simulate the same motion: MuJoCo's cost depends on the state (a falling body's contacts cost more than a held
one's). The two are interleaved in rounds; the ratio is the median of the per-round ratios. Each control mode
(``spd``, the default, ``pd`` and ``torque``) is measured the same way.

Run: ``python benchmarks/bench_rl.py [--quick]`` or ``python benchmarks/run.py --only rl [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import data_root, print_rows

WALK = "deepmimic/humanoid3d_walk.txt"
SEGMENT = 30  # control steps per segment (1 s at 30 Hz)


def _env(control: str):
    from optiq_rl.envs.track import TrackEnv

    return TrackEnv(reference=str(data_root() / WALK), control=control, max_tracking_error=None,
                    fall_termination=False)


def _env_segment(env, frame: int) -> float:
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    env.reset(seed=0, options={"frame": frame})
    start = time.perf_counter()
    for _ in range(SEGMENT):
        env.step(action)
    return time.perf_counter() - start


def _record(env, frame: int) -> np.ndarray:
    """The torques ``[SEGMENT * substeps, nu]`` the env's controller applies over a segment from ``frame``."""
    ctl, log = env.sim.controller, []
    clip, set_torque = ctl._clip, ctl.set_torque

    def clip_logged(tau, out):
        log.append(clip(tau, out).copy())
        return out

    def torque_logged(action):
        set_torque(action)
        log.extend([ctl.torque.copy()] * env.sim.substeps)

    ctl._clip, ctl.set_torque = clip_logged, torque_logged
    try:
        _env_segment(env, frame)
    finally:
        del ctl._clip, ctl.set_torque
    return np.array(log)


def _bare_segment(env, frame: int, torques: np.ndarray) -> float:
    import mujoco

    m, ref, substeps = env.sim.model, env.references[0], env.sim.substeps
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = ref.qpos[frame], ref.qvel[frame]
    ctrl, i = d.ctrl, 0
    start = time.perf_counter()
    for _ in range(SEGMENT):
        for _ in range(substeps):
            ctrl[:] = torques[i]
            mujoco.mj_step(m, d)
            i += 1
    return time.perf_counter() - start


def measure(control: str, rounds: int) -> tuple[float, float, float]:
    """Control steps/s of the env and of the bare loop (medians over rounds), and the median per-round ratio."""
    env = _env(control)
    frames = np.linspace(0, env.references[0].starts - 1, rounds).astype(int)
    torques = {int(f): _record(env, int(f)) for f in frames}
    _env_segment(env, 0), _bare_segment(env, int(frames[0]), torques[int(frames[0])])  # warm-up
    env_rates, bare_rates, ratios = [], [], []
    for f in map(int, frames):
        e, b = SEGMENT / _env_segment(env, f), SEGMENT / _bare_segment(env, f, torques[f])
        env_rates.append(e)
        bare_rates.append(b)
        ratios.append(e / b)
    return statistics.median(env_rates), statistics.median(bare_rates), statistics.median(ratios)


def run(quick: bool = False) -> list[dict]:
    """Rows ``{name, value, unit, ratio, vs}``: env control steps/s per control mode, ratio to the bare loop."""
    if not (data_root() / WALK).is_file():
        raise SystemExit(f"bench_rl: {data_root() / WALK} not found; set OPTIQ_TEST_DATA")
    rounds = 5 if quick else 15
    rows = []
    for control in ("spd", "pd", "torque"):
        env_rate, bare_rate, ratio = measure(control, rounds)
        rows.append({"name": f"Track-v0 control steps, {control} (600/30 Hz)", "value": round(env_rate, 1),
                     "unit": "steps/s", "ratio": round(ratio, 3), "vs": "bare mj_step loop"})
        rows.append({"name": f"bare mj_step loop replaying its torques ({control})", "value": round(bare_rate, 1),
                     "unit": "steps/s"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    print_rows("optiq-rl environments", run(ap.parse_args().quick))


if __name__ == "__main__":
    main()
