"""optiq: imitation-first motion learning. Core: data model, plugins, loaders, datasets, CLI.

Heavy modules (scipy, pyarrow, h5py) are imported lazily, so ``import optiq`` and plugin listing stay fast.
"""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("optiq")

from .clip import Clip  # noqa: E402
from .errors import DatasetError, OptiqError, ParseError, PluginError, SkeletonMismatchError  # noqa: E402
from .io import load, load_clip, save_clip  # noqa: E402
from .points import Points, load_points  # noqa: E402
from .skeleton import Skeleton  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Clip",
    "DatasetError",
    "OptiqError",
    "ParseError",
    "PluginError",
    "Points",
    "Skeleton",
    "SkeletonMismatchError",
    "hookimpl",
    "load",
    "load_clip",
    "load_points",
    "open_dataset",
    "save_clip",
    "write_dataset",
]


def __getattr__(name: str):
    if name in ("open_dataset", "write_dataset"):
        from . import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'optiq' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names live in __getattr__, so dir() would not list them otherwise.
    return sorted(set(globals()) | set(__all__))
