"""Free generation: a model rolled out from the first frames of a clip, steered by labels, written as motion.

``generate("m.pt", "walks.parquet:walk_01", labels={"content": "run"}, frames=300, out="run.bvh")``: the output
holds the context frames (ground truth) followed by ``frames`` generated ones, placed where the clip starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optiq import OptiqError
from optiq.atomic import check_output_path

from . import data as D
from .evaluate import check_skeleton, clip_rollout, load_model


def parse_context(context: str) -> tuple[str, str]:
    """``"ds.parquet:CLIP"`` -> (dataset, clip name); the clip name follows the last ``:``."""
    path, sep, clip = str(context).rpartition(":")
    if not sep or not path or not clip:
        raise OptiqError(f"--context {context!r}: expected DATASET:CLIP, e.g. walks.parquet:walk_01")
    return path, clip


def generate(model: str | os.PathLike, context: str, *, labels: Mapping[str, str] | None = None,
             frames: int = 300, context_frames: int | None = None, guidance: float = 0.0,
             out: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
             device: str = "cpu") -> Any:
    """The generated Clip (context then ``frames`` frames); written to ``out`` when given (a motion file such as
    ``.bvh``, atomically). labels: ``{"content": "run"}``, checked against the model's vocabulary (an unknown
    value lists the known ones); None keeps the context clip's labels. guidance: classifier-free guidance
    scale (0: plain conditional prediction)."""
    from optiq import save_clip

    if frames < 1:
        raise OptiqError(f"--frames must be positive, got {frames}")
    if out is not None:
        check_output_path(out)
    path, clip = parse_context(context)
    loaded = load_model(model, device)
    if labels is not None:
        loaded.model.vocab.encode(labels, strict=True)  # a typo or unknown value fails before any work
    source = D.open_source(path, cache_dir=cache_dir)
    try:
        check_skeleton(source, loaded, model)
        source.dataset.info(clip)  # an unknown clip name fails with the list of clips
        result = clip_rollout(loaded, source, clip, context=context_frames, frames=frames, labels=labels,
                              guidance=guidance, strict_labels=labels is not None)
    finally:
        source.close()
    if out is not None:
        save_clip(result.replace(name=Path(out).stem), out)
    return result
