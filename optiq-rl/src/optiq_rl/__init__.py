"""optiq-rl: simulated characters, reference motion on them, MuJoCo environments and SB3 training.

The public names are imported on first use, so ``import optiq_rl`` stays light (no mujoco until needed)::

    from optiq_rl import character, clip_to_qpos, body_positions

``import optiq_rl`` also registers the Gymnasium ids ``optiq/Track-v0`` and ``optiq/Locomotion-v0``
(``optiq_rl.envs.register_envs``): at once when gymnasium is already imported, else right after it is, so that
listing plugins never imports gymnasium.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

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


class _RegisterAfterGymnasium(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when gymnasium is first imported it lets the normal finders find it and registers
    the optiq envs once its module has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            from optiq_rl.envs import register_envs

            register_envs()

        spec.loader.exec_module = exec_module
        return spec


if "gymnasium" in sys.modules:
    from optiq_rl.envs import register_envs as _register

    _register()
elif not any(isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterGymnasium())
