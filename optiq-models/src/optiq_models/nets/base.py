"""What every next-state motion model is: :class:`MotionModel`, its config handling, and :func:`build_model`.

A next-state model reads normalised state features ``x [B, T, F]`` (``optiq.features``: one row per frame,
z-scored with the training split's statistics) and predicts the next frame at every position. It owns an
``encoder`` (``features_dim`` wide) that the RL package reuses; the head on top of it predicts the frame.
Architectures subclass MotionModel, declare their hyper-parameters as a dataclass (``Config``) and implement
``forward``; ``predict_next``, ``rollout`` and classifier-free guidance are shared.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from optiq.errors import OptiqError
from torch import nn

from .conditioning import LabelVocab, drop_labels

Cond = Mapping[str, torch.Tensor] | None
"""Labels of a batch: name -> LongTensor ``[B]`` (clip labels) or ``[B, T]`` (frame labels); None = none."""


class ConfigError(OptiqError):
    """A model config key that the architecture does not have, or a value of the wrong type."""


@dataclasses.dataclass
class BaseConfig:
    """Hyper-parameters every architecture has (the YAML ``model:`` section)."""

    cond_dim: int = 64
    """width of the label embedding that FiLM reads"""
    label_dropout: float = 0.1
    """probability, per sample and label, of training with the label dropped (index 0: unconditioned)"""


class MotionModel(nn.Module):
    """Base of every next-state model.

    feature_dim: F, the width of a feature row. vocab: the labels it is conditioned on. config: keys of
    ``Config`` (unknown keys and wrong types raise ConfigError naming the key).

    Subclasses set ``context`` (frames of context read: mlp k, transformer window, unet past window) and
    ``encoder`` (``.features_dim``; ``encoder(x [B, T, F], cond=None) -> [B, features_dim]``), and implement
    ``forward(x, cond) -> [B, T, F]``: the prediction of frame t+1 at every position t (normalised features).
    """

    kind: ClassVar[str] = "next_state"
    Config: ClassVar[type] = BaseConfig
    context: int
    encoder: nn.Module

    def __init__(self, feature_dim: int, vocab: LabelVocab | None = None, **config: Any) -> None:
        super().__init__()
        if not isinstance(feature_dim, numbers.Integral) or feature_dim < 1:
            raise ConfigError(f"feature_dim must be a positive integer, got {feature_dim!r}")
        self.feature_dim = int(feature_dim)  # a numpy integer (an array's shape) is fine
        self.vocab = vocab if vocab is not None else LabelVocab()
        self.config = parse_config(self.Config, config, type(self).__name__)

    def config_dict(self) -> dict[str, Any]:
        """The full config (defaults filled in): what a checkpoint stores to rebuild the model."""
        return dataclasses.asdict(self.config)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_next(self, x: torch.Tensor, cond: Cond = None, guidance: float = 0.0) -> torch.Tensor:
        """The frame after the last one of ``x [B, T, F]`` (T >= 1): ``[B, F]`` normalised features.

        Only the last ``context`` frames are read. guidance: classifier-free guidance scale s; the prediction is
        ``cond + s * (cond - uncond)`` where uncond is the same model with every label dropped; s = 0 is the
        plain conditional prediction.
        """
        return self.predict_chunk(x, cond, guidance)[:, 0]

    def predict_chunk(self, x: torch.Tensor, cond: Cond = None, guidance: float = 0.0) -> torch.Tensor:
        """The frames predicted at once after ``x [B, T, F]``: ``[B, n, F]``, n = 1 except for chunk models.
        Reads the last ``context`` frames; ``guidance`` as in :meth:`predict_next`."""
        frames = x.shape[1]
        x = x[:, -self.context:]
        cond = _window_cond(cond, frames - x.shape[1], frames)
        if guidance == 0.0 or cond is None:
            return self._chunk(x, cond)
        both = self._chunk(torch.cat([x, x]), _cat_cond(cond, drop_labels(cond)))
        c, u = both.chunk(2)
        return c + guidance * (c - u)

    def _chunk(self, x: torch.Tensor, cond: Cond) -> torch.Tensor:
        """``[B, n, F]`` after ``x [B, T, F]`` with T <= context: the last position of ``forward``."""
        return self(x, cond)[:, -1:]

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, steps: int, cond: Cond = None, guidance: float = 0.0) -> torch.Tensor:
        """Feed the model its own predictions: ``context [B, T, F]`` -> ``[B, steps, F]`` (normalised).

        cond: labels as in ``forward``; frame labels ``[B, T + steps]`` give the labels of the frames to come.
        Raises OptiqError when a prediction is not finite: a diverging rollout stops, it never returns garbage.
        """
        was_training = self.training
        self.eval()
        try:
            timeline = context.shape[1]  # frames so far, context included: where frame labels are read
            frames = context[:, -self.context:]
            out: list[torch.Tensor] = []
            done = 0
            while done < steps:
                window = _window_cond(cond, timeline - frames.shape[1], timeline)
                nxt = self.predict_chunk(frames, window, guidance)[:, : steps - done]
                if not torch.isfinite(nxt).all():
                    raise OptiqError(f"rollout diverged at step {done + 1} of {steps}: the prediction is not finite")
                out.append(nxt)
                done += nxt.shape[1]
                timeline += nxt.shape[1]
                frames = torch.cat([frames, nxt], dim=1)[:, -self.context:]
            return torch.cat(out, dim=1)
        finally:
            self.train(was_training)


def _cat_cond(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: torch.cat([a[name], b[name]]) for name in a}


def _window_cond(cond: Cond, start: int, stop: int) -> Cond:
    """Frame labels ``[B, T]`` cut to frames ``start:stop`` of the timeline they describe; clip labels ``[B]``
    are left as they are."""
    if cond is None:
        return None
    return {n: (v if v.dim() == 1 else v[:, start:stop]) for n, v in cond.items()}


def parse_config(cls: type, config: Mapping[str, Any], owner: str) -> Any:
    """``cls(**config)`` with every key and type checked: unknown key or wrong type -> ConfigError naming it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in config.items():
        if key not in fields:
            raise ConfigError(f"model config: unknown key {key!r} for {owner}; known keys: {', '.join(fields)}")
        values[key] = _check_type(key, value, hints[key], owner)
    return cls(**values)


def _check_type(key: str, value: Any, hint: Any, owner: str) -> Any:
    """``value`` checked against ``hint`` (int, float, bool, str, tuple[int, ...], or a Literal of str)."""
    origin = typing.get_origin(hint)
    ok = True
    if origin is typing.Literal:
        ok = value in typing.get_args(hint)
        expected = " or ".join(repr(a) for a in typing.get_args(hint))
    elif origin is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        expected = "a list of integers"
        value = tuple(value) if ok else value
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        expected = "a number"
        value = float(value) if ok else value
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif hint is bool:
        ok = isinstance(value, bool)
        expected = "true or false"
    else:
        ok = isinstance(value, hint)
        expected = f"a {hint.__name__}"
    if not ok:
        raise ConfigError(f"model config: key {key!r} of {owner} must be {expected}, got {value!r}")
    return value


def check_positive(config: Any, *keys: str) -> None:
    """Raise ConfigError for each of ``keys`` whose value is not > 0 (a zero width builds an empty network)."""
    for key in keys:
        value = getattr(config, key)
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(v <= 0 for v in values):
            raise ConfigError(f"model config: key {key!r} must be > 0, got {value!r}")


def build_model(name_or_target: str, feature_dim: int, vocab: LabelVocab | None = None,
                config: Mapping[str, Any] | None = None) -> MotionModel:
    """A model by registered name (``"transformer"``) or ``"module:Class"``, built with ``config``.

    The class must be a MotionModel subclass (or follow its interface: ``kind``, ``forward``, ``predict_next``,
    ``rollout``, ``encoder``). Unknown names raise PluginError with the installed ones and the install hint.
    """
    from optiq.plugins import registry

    cls = registry("model").load(name_or_target)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise OptiqError(f"model {name_or_target!r} is not a torch.nn.Module class (got {type(cls).__name__})")
    model = cls(feature_dim, vocab if vocab is not None else LabelVocab(), **dict(config or {}))
    for attr in ("kind", "encoder", "rollout", "predict_next"):
        if not hasattr(model, attr):
            raise OptiqError(f"model {name_or_target!r} lacks {attr!r}; a model implements optiq_models' "
                             "MotionModel interface (docs/models.md)")
    return model
