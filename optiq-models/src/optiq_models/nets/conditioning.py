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
from collections.abc import Iterable, Mapping, Sequence

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

    def __init__(self, labels: Mapping[str, Iterable[str]] | None = None) -> None:
        self.labels: dict[str, list[str]] = {}
        for name, values in sorted((labels or {}).items()):
            values = sorted({str(v) for v in values} - {UNKNOWN})
            self.labels[str(name)] = [UNKNOWN, *values]
        self._index = {name: {v: i for i, v in enumerate(values)} for name, values in self.labels.items()}

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
        """Label names in a fixed (sorted) order: the column order of exported models."""
        return list(self.labels)

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
            extra = sorted(set(labels) - set(self.labels))
            if extra:
                known = ", ".join(self.labels) or "none"
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

    def to_json(self) -> str:
        return json.dumps({"labels": self.labels}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping) -> LabelVocab:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        vocab = cls()
        # The saved order is the one the embeddings were trained with: kept as is, not re-sorted.
        vocab.labels = {str(k): [str(v) for v in values] for k, values in data["labels"].items()}
        vocab._index = {name: {v: i for i, v in enumerate(values)} for name, values in vocab.labels.items()}
        return vocab

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelVocab) and self.labels == other.labels

    def __repr__(self) -> str:
        return f"LabelVocab({ {n: v[1:] for n, v in self.labels.items()} })"


class LabelEmbedding(nn.Module):
    """Categorical labels -> one conditioning vector per frame.

    Each label name has its own embedding table (index 0 = unknown); the embeddings of all names are summed.
    In training mode each label of each sample is replaced by index 0 with probability ``dropout`` (label
    dropout), so the same network also learns the unconditioned prediction that classifier-free guidance needs.

    cond: name -> LongTensor ``[B]`` (clip labels) or ``[B, T]`` (frame labels); a missing name = unknown.
    Returns ``[B, T, dim]``.
    """

    def __init__(self, vocab: LabelVocab, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.vocab = vocab
        self.dim = dim
        self.dropout = dropout
        self.tables = nn.ModuleDict({name: nn.Embedding(vocab.size(name), dim) for name in vocab.names})

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
        return out


def _label_index(cond: Mapping[str, torch.Tensor] | None, name: str, batch: int, frames: int,
                 device: torch.device | None) -> torch.Tensor:
    """``[B, T]`` long indices of label ``name`` (zeros when absent); ``[B]`` is broadcast over frames."""
    value = None if cond is None else cond.get(name)
    if value is None:
        return torch.zeros(batch, frames, dtype=torch.long, device=device)
    value = value.to(device=device, dtype=torch.long)
    if value.dim() == 1:
        return value[:, None].expand(batch, frames)
    if value.shape[1] < frames:
        raise OptiqError(f"frame label {name!r} has {value.shape[1]} frames, the input has {frames}")
    # Per-frame labels may run past the input (a rollout passes the labels of the frames still to come).
    return value[:, :frames]


def drop_labels(cond: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    """``cond`` with every label set to index 0: the unconditioned input of classifier-free guidance."""
    if cond is None:
        return None
    return {name: torch.zeros_like(value, dtype=torch.long) for name, value in cond.items()}


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
