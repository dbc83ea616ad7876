"""optiq-rl: simulated characters, reference motion on them, MuJoCo environments and SB3 training.

The public names are imported on first use, so ``import optiq_rl`` stays light (no mujoco until needed)::

    from optiq_rl import character, clip_to_qpos, body_positions
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Character": "optiq_rl.characters",
    "character": "optiq_rl.characters",
    "clip_to_qpos": "optiq_rl.retarget",
    "body_positions": "optiq_rl.retarget",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'optiq_rl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
