"""MuJoCo environments: ``optiq/Track-v0`` (track reference clips) and ``optiq/Locomotion-v0`` (task-only).

``import optiq_rl`` registers both ids with Gymnasium (``register_envs``), so ``gymnasium.make("optiq/Track-v0",
reference="walk.txt")`` works; the classes are imported on first use (no mujoco until then).
"""

from __future__ import annotations

ENVS = {
    "optiq/Track-v0": "optiq_rl.envs.track:TrackEnv",
    "optiq/Locomotion-v0": "optiq_rl.envs.locomotion:LocomotionEnv",
}


def register_envs() -> None:
    """Register the optiq env ids with Gymnasium (again is harmless)."""
    import gymnasium

    for env_id, entry_point in ENVS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=entry_point)


def __getattr__(name: str):
    lazy = {"TrackEnv": "track", "TrackConfig": "track", "LocomotionEnv": "locomotion",
            "LocomotionConfig": "locomotion", "Controller": "control", "ActionMap": "control",
            "TrackingReward": "rewards", "RewardSchedule": "rewards", "PRESETS": "rewards"}
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{lazy[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
