"""The model checkpoint: one ``.pt`` file that ``torch.load(path, weights_only=True)`` reads.

Everything in it is a tensor or a plain container (dict, list, tuple, str, int, float, bool, None), so loading it
executes no code. Layout of format version 1 (docs/models.md, "Checkpoint format")::

    format           "optiq-model"
    format_version   1
    arch             registered name ("transformer") or "module:Class" of the network
    target           "module:Class" the network was built from (for `optiq model info`)
    kind             "next_state", or "tokenizer" (the VQ-VAE: its codebooks and their statistics are in state_dict)
    feature_dim      F
    model_config     the network's full config (defaults filled in)
    state_dict       name -> tensor
    config           the training config (plain values), as the trainer passed it
    feature_spec     what FeatureSpec.to_json() returned
    normalizer       {"mean": float32 [F], "std": float32 [F]}
    vocab            {"labels": {name: [values, index 0 = "<unknown>"]}}, and for a model with frame labels
                     "frame": [names given per frame], "floats": {name: {"cyclic": bool}} (optional keys:
                     a file without them is a model of clip labels, as format 1 wrote it)
    skeleton         {"names": [J], "parents": [J], "offsets": float64 [J, 3], "end_sites": {"j": [3]}}
    split            the split (plain values)
    versions         {"optiq": ..., "optiq_models": ..., "torch": ...}
    extra            optional: optimizer / scheduler / RNG state, step, metrics (tensors and plain values)

A later optiq-models keeps reading every earlier format version (tests/test_checkpoint.py loads a version 1 file).
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optiq.atomic import atomic_path
from optiq.errors import OptiqError, SkeletonMismatchError
from optiq.skeleton import Skeleton

from .nets.conditioning import LabelVocab

FORMAT = "optiq-model"
FORMAT_VERSION = 1
REQUIRED = ("format_version", "arch", "feature_dim", "model_config", "state_dict", "vocab")


class CheckpointError(OptiqError):
    """A file that is not an optiq model checkpoint, is truncated, or holds what this version cannot read."""


@dataclass
class Checkpoint:
    """What a checkpoint holds besides the network (see the module docstring for each field)."""

    arch: str
    feature_dim: int
    model_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    vocab: LabelVocab
    format_version: int = FORMAT_VERSION
    target: str = ""
    kind: str = "next_state"
    config: Any = None
    feature_spec: Any = None
    normalizer: Any = None
    skeleton: Skeleton | None = None
    split: Any = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def check_skeleton(self, skeleton: Skeleton, what: str = "the data") -> None:
        """Raise SkeletonMismatchError (one line naming both) when ``skeleton`` has another topology."""
        if self.skeleton is None or self.skeleton.same_topology(skeleton):
            return
        mine, theirs = self.skeleton, skeleton
        diff = next((i for i, (a, b) in enumerate(zip(mine.names, theirs.names, strict=False)) if a != b), None)
        if diff is None and mine.num_joints == theirs.num_joints:
            detail = "the same joint names with other parents"
        elif diff is None:
            detail = f"{mine.num_joints} vs {theirs.num_joints} joints"
        else:
            detail = f"joint {diff} is {mine.names[diff]!r} vs {theirs.names[diff]!r}"
        raise SkeletonMismatchError(
            f"the model was trained on a skeleton of {mine.num_joints} joints ({_joints(mine)}) but {what} has "
            f"{theirs.num_joints} joints ({_joints(theirs)}): {detail}", self.path)


def _joints(sk: Skeleton) -> str:
    return ", ".join(sk.names[:3]) + (", ..." if sk.num_joints > 3 else "")


# --- saving ----------------------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, config: Any = None, feature_spec: Any = None,
                    normalizer: Any = None, vocab: LabelVocab | None = None, skeleton: Skeleton | None = None,
                    split: Any = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` and what it needs at inference to ``path`` (atomic; returns the path).

    config, split: plain values (or objects with ``to_json()``). feature_spec: an ``optiq.features.FeatureSpec``
    (stored as its ``to_json()``). normalizer: anything with ``mean`` and ``std`` ``[F]``. vocab: defaults to
    ``model.vocab``. extra: tensors and plain values only (optimizer, scheduler and RNG state: see
    :func:`rng_state`); anything else raises CheckpointError naming its key, before a byte is written.
    """
    vocab = vocab if vocab is not None else getattr(model, "vocab", LabelVocab())
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": model_name(type(model)),
        "target": f"{type(model).__module__}:{type(model).__qualname__}",
        "kind": str(getattr(model, "kind", "next_state")),
        "feature_dim": int(model.feature_dim),
        "model_config": dict(model.config_dict()) if hasattr(model, "config_dict") else {},
        # Detached CPU copies: a model on a GPU still writes a checkpoint that loads anywhere.
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": _plain(config),
        "feature_spec": _plain(feature_spec),
        "normalizer": _normalizer_payload(normalizer),
        "vocab": vocab.to_dict(),
        "skeleton": _skeleton_payload(skeleton),
        "split": _plain(split),
        "versions": {"optiq": _version("optiq-core"), "optiq_models": _version("optiq-models"),
                     "torch": str(torch.__version__)},
        "extra": dict(extra or {}),
    }
    _check_safe(payload, "checkpoint")
    with atomic_path(path, suffixes=(".pt",)) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def model_name(cls: type) -> str:
    """The registered name of model class ``cls``, or its ``"module:Class"`` when no plugin registers it."""
    from optiq.plugins import registry

    target = f"{cls.__module__}:{cls.__qualname__}"
    for cap in registry("model"):
        if cap.target == target or cap.target is cls:
            return cap.name
    return target


def _plain(value: Any) -> Any:
    """``value.to_json()`` for objects that have it (FeatureSpec, Split), else the value itself."""
    return value.to_json() if hasattr(value, "to_json") else value


def _normalizer_payload(normalizer: Any) -> dict[str, torch.Tensor] | None:
    if normalizer is None:
        return None
    if isinstance(normalizer, Mapping):
        mean, std = normalizer["mean"], normalizer["std"]
    else:
        mean, std = normalizer.mean, normalizer.std
    return {"mean": torch.as_tensor(np.asarray(mean, dtype=np.float32)),
            "std": torch.as_tensor(np.asarray(std, dtype=np.float32))}


def _skeleton_payload(skeleton: Skeleton | None) -> dict[str, Any] | None:
    if skeleton is None:
        return None
    return {"names": list(skeleton.names), "parents": [int(p) for p in skeleton.parents],
            "offsets": torch.from_numpy(np.array(skeleton.offsets, dtype=np.float64)),
            "end_sites": {str(k): [float(x) for x in v] for k, v in skeleton.end_sites.items()}}


# Exact types: the weights-only unpickler refuses subclasses (torch.__version__ is a str subclass it rejects).
_SAFE = {type(None), bool, int, float, str}
_SAFE_MAPPINGS = {dict, OrderedDict}


def _check_safe(value: Any, where: str) -> None:
    """Raise CheckpointError at the first value ``torch.load(weights_only=True)`` would refuse."""
    if type(value) in _SAFE or isinstance(value, torch.Tensor):
        return
    if type(value) in _SAFE_MAPPINGS:
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(f"{where}: key {k!r} is a {type(k).__name__}; checkpoints take str or int keys")
            _check_safe(v, f"{where}[{k!r}]")
        return
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            _check_safe(v, f"{where}[{i}]")
        return
    raise CheckpointError(f"{where} is a {type(value).__module__}.{type(value).__name__}; a checkpoint holds only "
                          "tensors and plain values (dict, list, tuple, str, int, float, bool, None)")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


# --- loading ---------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read ``path`` without building the network. Raises CheckpointError (one line) for a missing, truncated or
    foreign file, or a format version newer than this optiq-models reads."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file" if not path.exists() else "not a file", path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError("not an optiq model checkpoint (not a torch zip archive)", path)
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError... for a bad file
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
        raise CheckpointError(f"not an optiq model checkpoint, or truncated ({type(exc).__name__}: {first})",
                              path) from None
    if not isinstance(raw, Mapping) or raw.get("format") != FORMAT:
        raise CheckpointError(f"not an optiq model checkpoint (a torch file without format {FORMAT!r})", path)
    version = raw.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"bad format_version {version!r}", path)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format {version} was written by a newer optiq-models; this one reads "
                              f"formats 1..{FORMAT_VERSION} (upgrade optiq-models)", path)
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(f"checkpoint lacks {', '.join(missing)}", path)
    return Checkpoint(
        arch=raw["arch"], feature_dim=int(raw["feature_dim"]), model_config=dict(raw["model_config"]),
        state_dict=dict(raw["state_dict"]), vocab=LabelVocab.from_json(raw["vocab"]), format_version=version,
        target=raw.get("target", ""), kind=raw.get("kind", "next_state"), config=raw.get("config"),
        feature_spec=_feature_spec(raw.get("feature_spec")), normalizer=_normalizer(raw.get("normalizer")),
        skeleton=_skeleton(raw.get("skeleton"), path), split=raw.get("split"), versions=dict(raw.get("versions", {})),
        extra=dict(raw.get("extra") or {}), path=os.fspath(path))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, Checkpoint]:
    """The network of checkpoint ``path`` with its weights, in eval mode, and the :class:`Checkpoint`."""
    from .nets.base import build_model

    ckpt = read_checkpoint(path, map_location)
    try:
        # Building initialises weights at random: forked, so loading a model leaves the caller's RNG as it was.
        with torch.random.fork_rng(devices=[]):
            model = build_model(ckpt.arch, ckpt.feature_dim, ckpt.vocab, ckpt.model_config)
    except OptiqError as exc:
        raise CheckpointError(f"cannot rebuild model {ckpt.arch!r}: {exc}", path) from None
    result = model.load_state_dict(ckpt.state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        what = (f"missing {', '.join(result.missing_keys[:3])}" if result.missing_keys
                else f"unexpected {', '.join(result.unexpected_keys[:3])}")
        raise CheckpointError(f"the weights do not fit model {ckpt.arch!r}: {what}", path)
    model.to(map_location)
    model.eval()
    return model, ckpt


def _feature_spec(raw: Any) -> Any:
    """A FeatureSpec when optiq.features can read ``raw``; the stored value otherwise."""
    if raw is None:
        return None
    try:
        from optiq.features import FeatureSpec
    except ImportError:
        return raw
    return FeatureSpec.from_json(raw)


def _normalizer(raw: Any) -> Any:
    if raw is None:
        return None
    mean, std = raw["mean"].numpy(), raw["std"].numpy()
    try:
        from optiq.features import Normalizer
    except ImportError:
        return {"mean": mean, "std": std}
    return Normalizer(mean=mean, std=std)


def _skeleton(raw: Any, path: Path) -> Skeleton | None:
    if raw is None:
        return None
    try:
        return Skeleton(tuple(raw["names"]), np.asarray(raw["parents"]), raw["offsets"].numpy(),
                        {int(k): np.asarray(v) for k, v in raw.get("end_sites", {}).items()})
    except (KeyError, AttributeError, OptiqError) as exc:
        raise CheckpointError(f"bad skeleton in checkpoint: {exc}", path) from None


# --- random state for resume ---------------------------------------------------------------------------------
def rng_state(generator: np.random.Generator | None = None) -> dict[str, Any]:
    """The state of torch's and Python's random generators, and of numpy ``generator`` when given, as
    checkpoint-safe values (tensors, lists, ints)."""
    version, ints, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(ints), gauss]}
    if generator is not None:
        state["numpy"] = generator.bit_generator.state  # a dict of ints and str
    return state


def set_rng_state(state: Mapping[str, Any], generator: np.random.Generator | None = None) -> None:
    """Restore what :func:`rng_state` returned (``generator``: the numpy generator to restore in place)."""
    torch.set_rng_state(state["torch"])
    version, ints, gauss = state["python"]
    random.setstate((version, tuple(ints), gauss))
    if generator is not None and "numpy" in state:
        generator.bit_generator.state = state["numpy"]
