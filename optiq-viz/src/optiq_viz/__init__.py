"""optiq-viz: look at motion. Interactive Plotly skeletons, plots of errors and joint angles, MP4 videos.

The public functions are imported lazily, so ``import optiq_viz`` does not import plotly.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "plot_skeleton": "html",
    "render_html": "html",
    "load_report": "plots",
    "check_report": "plots",
    "plot_errors": "plots",
    "joint_angles": "plots",
    "plot_joint_angles": "plots",
    "plot_label_timeline": "plots",
    "write_figure": "plots",
    "render_plots": "plots",
    "render_video": "video",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'optiq_viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
