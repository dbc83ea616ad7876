"""Label conditioning: the label vocabulary, label embeddings with label dropout, and FiLM.

Why FiLM in every layer rather than concatenating the labels to the input: a next-state model sees a context
that already tells it how fast the body moves, so a label that enters only at the input is easily out-voted by
the context (quick models measured on this data copied the context's speed and moved at most 30-50% of the way
towards a `movement=run` label). FiLM lets the label scale and shift every hidden layer, so the label can steer
the whole computation at a cost of two small linear maps per layer. Its maps start at zero: an untrained FiLM is
the identity and conditioning is learnt as a correction, not as noise on top of the trunk.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from optiq.errors import OptiqError
from torch import nn

UNKNOWN = "<unknown>"
"""The value at index 0 of every label: a dropped (label dropout) or absent label, i.e. "unconditioned"."""


class LabelError(OptiqError):
    """A label name or value that a model does not know."""


class LabelVocab:
    """Label name -> the values a model knows, in a fixed order; index 0 of each name is :data:`UNKNOWN`.

    labels: ``{name: values}``; values are sorted and de-duplicated, ``UNKNOWN`` is put first. The vocabulary is
    saved with the model (``to_json``), so that ``movement=run`` means the same index at training and inference.
    """

    def __init__(self, labels: Mapping[str, Iterable[str]] | None = None, *,
                 floats: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
                 frame: Iterable[str] = ()) -> None:
        self.labels: dict[str, list[str]] = {}
        for name, values in sorted((labels or {}).items()):
            values = sorted({str(v) for v in values} - {UNKNOWN})
            self.labels[str(name)] = [UNKNOWN, *values]
        self._index = {name: {v: i for i, v in enumerate(values)} for name, values in self.labels.items()}
        # Float frame labels (gait phase): name -> {"cyclic": bool}; cyclic values live in [0, 1) and wrap.
        if floats is not None and not isinstance(floats, Mapping):
            floats = {name: {"cyclic": False} for name in floats}
        self.floats: dict[str, dict[str, Any]] = {str(k): dict(v) for k, v in sorted((floats or {}).items())}
        # Names given per frame (``[B, T]``) rather than per clip: the categorical frame labels and every float.
        self.frame: list[str] = sorted({str(n) for n in frame} | set(self.floats))

    @classmethod
    def from_label_dicts(cls, dicts: Iterable[Mapping[str, str]], names: Sequence[str]) -> LabelVocab:
        """The vocabulary of ``names`` over clip label dicts (e.g. ``[clip.labels for clip in dataset]``).
        A name that no dict carries is an error: the data cannot condition on it."""
        values: dict[str, set[str]] = {n: set() for n in names}
        for d in dicts:
            for n in names:
                if n in d:
                    values[n].add(str(d[n]))
        missing = [n for n, v in values.items() if not v]
        if missing:
            raise LabelError(f"no clip carries label(s) {', '.join(missing)}; cannot condition on them")
        return cls(values)

    @property
    def names(self) -> list[str]:
        """Categorical label names in a fixed (sorted) order: the column order of exported models."""
        return list(self.labels)

    @property
    def float_names(self) -> list[str]:
        """Float frame label names (sorted): the columns of an exported model's ``values`` input."""
        return list(self.floats)

    def size(self, name: str) -> int:
        """Number of indices of ``name``, ``UNKNOWN`` included."""
        return len(self.labels[name])

    def encode(self, labels: Mapping[str, str], *, strict: bool = False) -> dict[str, int]:
        """Indices of ``labels`` (``{"movement": "run"}``) for every name of the vocabulary.

        A name absent from ``labels`` gets 0 (unconditioned). A value the model does not know raises a one-line
        LabelError listing the known values. Names the vocabulary does not have are ignored (clips carry more
        labels than a model conditions on) unless ``strict`` (what a user typed: a typo must not pass silently).
        """
        if strict:
            extra = sorted(set(labels) - set(self.labels) - set(self.floats))
            if extra:
                known = ", ".join([*self.labels, *self.floats]) or "none"
                raise LabelError(f"the model is not conditioned on label {extra[0]!r}; its labels: {known}")
        out = {}
        for name, index in self._index.items():
            value = labels.get(name)
            if value is None:
                out[name] = 0
                continue
            value = str(value)
            if value not in index:
                known = ", ".join(self.labels[name][1:])
                raise LabelError(f"label {name}={value!r} is unknown to the model; known values: {known}")
            out[name] = index[value]
        return out

    def encode_batch(self, batch: Sequence[Mapping[str, str]], *, strict: bool = False) -> dict[str, torch.Tensor]:
        """``cond`` for a batch: name -> LongTensor ``[B]`` of indices (see :meth:`encode`)."""
        rows = [self.encode(labels, strict=strict) for labels in batch]
        return {name: torch.tensor([r[name] for r in rows], dtype=torch.long) for name in self.labels}

    def decode(self, name: str, index: int) -> str:
        return self.labels[name][index]

    def to_dict(self) -> dict[str, Any]:
        """``{"labels": {name: values}}``, plus ``floats`` and ``frame`` when the model has frame labels (a
        vocabulary of clip labels only is written as in format 1)."""
        out: dict[str, Any] = {"labels": {k: list(v) for k, v in self.labels.items()}}
        if self.floats:
            out["floats"] = {k: dict(v) for k, v in self.floats.items()}
        if self.frame:
            out["frame"] = list(self.frame)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping) -> LabelVocab:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        vocab = cls(floats=data.get("floats"), frame=data.get("frame", ()))
        # The saved order is the one the embeddings were trained with: kept as is, not re-sorted.
        vocab.labels = {str(k): [str(v) for v in values] for k, values in data["labels"].items()}
        vocab._index = {name: {v: i for i, v in enumerate(values)} for name, values in vocab.labels.items()}
        return vocab

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelVocab) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        floats = f", floats={list(self.floats)}" if self.floats else ""
        return f"LabelVocab({ {n: v[1:] for n, v in self.labels.items()} }{floats})"


class LabelEmbedding(nn.Module):
    """Labels -> one conditioning vector per frame.

    Each categorical label name has its own embedding table (index 0 = unknown). A float frame label ``x``
    enters through a linear map: a cyclic one (gait phase in [0, 1)) as ``(sin 2 pi x, cos 2 pi x)``, so that it
    is continuous across its wrap, any other as x itself; NaN means unknown and gives a learnt "no value" vector. The vectors of all
    names are summed. In training mode each label of each sample is dropped (index 0, or the "no value" vector)
    with probability ``dropout`` (label dropout), so the same network also learns the unconditioned prediction
    that classifier-free guidance needs.

    cond: name -> LongTensor ``[B]`` (clip labels) or ``[B, T]`` (frame labels), FloatTensor ``[B, T]`` for a
    float label; a missing name = unknown. Returns ``[B, T, dim]``.
    """

    def __init__(self, vocab: LabelVocab, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.vocab = vocab
        self.dim = dim
        self.dropout = dropout
        self.tables = nn.ModuleDict({name: nn.Embedding(vocab.size(name), dim) for name in vocab.names})
        # Empty for a model of clip labels only: its state dict keeps the keys of format 1.
        self.float_maps = nn.ModuleDict({name: nn.Linear(3, dim) for name in vocab.float_names})
        self.float_unknown = nn.ParameterDict({name: nn.Parameter(torch.zeros(dim)) for name in vocab.float_names})

    def forward(self, cond: Mapping[str, torch.Tensor] | None, batch: int, frames: int,
                device: torch.device | None = None) -> torch.Tensor:
        out = torch.zeros(batch, frames, self.dim, device=device)
        for name, table in self.tables.items():
            index = _label_index(cond, name, batch, frames, device)
            if self.training and self.dropout > 0:
                # One draw per sample (not per frame): a clip is either conditioned or not, as at generation.
                keep = torch.rand(batch, 1, device=index.device) >= self.dropout
                index = index * keep
            out = out + table(index)
        for name, linear in self.float_maps.items():
            value = _label_value(cond, name, batch, frames, device)
            unknown = torch.isnan(value)
            if self.training and self.dropout > 0:
                unknown = unknown | (torch.rand(batch, 1, device=value.device) < self.dropout)
            x = torch.nan_to_num(value, nan=0.0)[..., None]
            if self.vocab.floats[name].get("cyclic"):  # on the circle: 0.999 sits next to 0.001
                angle = 2 * math.pi * x
                x = torch.cat([torch.zeros_like(x), torch.sin(angle), torch.cos(angle)], dim=-1)
            else:
                x = torch.cat([x, torch.zeros_like(x), torch.zeros_like(x)], dim=-1)
            emb = linear(x)
            out = out + torch.where(unknown[..., None], self.float_unknown[name], emb)
        return out


def _label_index(cond: Mapping[str, torch.Tensor] | None, name: str, batch: int, frames: int,
                 device: torch.device | None) -> torch.Tensor:
    """``[B, T]`` long indices of label ``name`` (zeros when absent); ``[B]`` is broadcast over frames."""
    return _label_frames(cond, name, batch, frames, device, torch.long, 0)


def _label_value(cond: Mapping[str, torch.Tensor] | None, name: str, batch: int, frames: int,
                 device: torch.device | None) -> torch.Tensor:
    """``[B, T]`` float values of float label ``name`` (NaN, i.e. unknown, when absent)."""
    return _label_frames(cond, name, batch, frames, device, torch.float32, math.nan)


def _label_frames(cond: Mapping[str, torch.Tensor] | None, name: str, batch: int, frames: int,
                  device: torch.device | None, dtype: torch.dtype, missing: float) -> torch.Tensor:
    """``[B, T]`` of label ``name`` as ``dtype``: ``missing`` when absent, ``[B]`` broadcast over frames."""
    value = None if cond is None else cond.get(name)
    if value is None:
        return torch.full((batch, frames), missing, dtype=dtype, device=device)
    value = value.to(device=device, dtype=dtype)
    if value.dim() == 1:
        return value[:, None].expand(batch, frames)
    if value.shape[1] < frames:
        raise OptiqError(f"frame label {name!r} has {value.shape[1]} frames, the input has {frames}")
    # Per-frame labels may run past the input (a rollout passes the labels of the frames still to come).
    return value[:, :frames]


def drop_labels(cond: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    """``cond`` with every label unknown (index 0, NaN for float labels): the unconditioned input of
    classifier-free guidance."""
    if cond is None:
        return None
    return {name: torch.full_like(value, math.nan) if value.is_floating_point()
            else torch.zeros_like(value, dtype=torch.long) for name, value in cond.items()}


class FiLM(nn.Module):
    """Feature-wise linear modulation ``h * (1 + gamma(c)) + beta(c)``; starts as the identity (zero init).

    h: ``[..., C]`` (channels last) or ``[B, C, T]`` with ``channels_first``; c: ``[..., dim]`` (``[B, T, dim]``).
    """

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor, channels_first: bool = False) -> torch.Tensor:
        gamma, beta = self.proj(c).chunk(2, dim=-1)
        if channels_first:
            gamma, beta = gamma.transpose(1, 2), beta.transpose(1, 2)
        return h * (1 + gamma) + beta
