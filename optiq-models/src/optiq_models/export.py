"""Export the one-step predictor of a checkpoint to TorchScript or ONNX; the rollout loop stays in Python.

The exported graph is ``next = f(x, labels, values)``: x ``[B, context, F]`` normalised features (B free, the
window length fixed to the model's context), labels ``[B, L]`` int64 label indices in ``vocab.names`` order
(absent for a model without categorical labels), values ``[B, Lf]`` float32 float frame labels (gait phase) in
``vocab.float_names`` order (absent without them), next ``[B, chunk, F]`` (chunk = 1 except for the U-Net).
Frame labels are given once per window (the label of its last frame, held over the window). Each export is checked
against the eager model on random windows and labels before it is written.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch
from optiq.atomic import atomic_path, check_output_path
from optiq.errors import OptiqError

from .checkpoint import load_checkpoint

FORMATS = {"torchscript": (".pt",), "onnx": (".onnx",)}
TOLERANCE = 1e-5


class OneStep(torch.nn.Module):
    """``forward(x [B, T, F], labels [B, L] int64, values [B, Lf] float32) -> [B, n, F]``: the model's next
    frames, labels by column (each input present only when the model has such labels)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.names = list(model.vocab.names)
        self.float_names = list(getattr(model.vocab, "float_names", []))

    def forward(self, x: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        inputs = list(inputs)
        cond = {}
        if self.names:
            labels = inputs.pop(0)
            cond.update({n: labels[:, i] for i, n in enumerate(self.names)})
        if self.float_names:
            values = inputs.pop(0)
            cond.update({n: values[:, i] for i, n in enumerate(self.float_names)})
        return self.model.predict_chunk(x, cond or None)


def input_names(model: torch.nn.Module) -> list[str]:
    """Names of the exported graph's inputs, in order: x, then labels and values where the model has them."""
    return ["x", *(["labels"] if model.vocab.names else []),
            *(["values"] if getattr(model.vocab, "float_names", []) else [])]


def example_inputs(model: torch.nn.Module, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random normalised windows ``[batch, context, F]``, random label indices ``[batch, L]`` and float label
    values in [0, 1) ``[batch, Lf]``, as the model has them."""
    g = torch.Generator().manual_seed(seed)
    out = [torch.randn(batch, int(model.context), model.feature_dim, generator=g)]
    if model.vocab.names:
        out.append(torch.stack([torch.randint(0, model.vocab.size(n), (batch,), generator=g)
                                for n in model.vocab.names], dim=1))
    floats = getattr(model.vocab, "float_names", [])
    if floats:
        out.append(torch.rand(batch, len(floats), generator=g))
    return tuple(out)


def export_model(checkpoint: str | os.PathLike, out: str | os.PathLike, fmt: str = "torchscript") -> float:
    """Write the one-step predictor of ``checkpoint`` to ``out`` as ``fmt`` (torchscript | onnx), atomically.

    Returns the largest absolute difference between export and eager model on random windows (batch 3, another
    batch size than the one traced); raises OptiqError when it exceeds 1e-5, and writes nothing then.
    """
    if fmt not in FORMATS:
        raise OptiqError(f"unknown export format {fmt!r}; expected {' or '.join(FORMATS)}")
    check_output_path(out, suffixes=FORMATS[fmt], inputs=(checkpoint,))  # before the work, not after
    model, _ = load_checkpoint(checkpoint)
    step = OneStep(model).eval()
    trace_inputs, check_inputs = example_inputs(model, 2, seed=0), example_inputs(model, 3, seed=1)
    with torch.no_grad():
        expected = step(*check_inputs)
    with atomic_path(out, suffixes=FORMATS[fmt], inputs=(checkpoint,)) as tmp:
        if fmt == "torchscript":
            got = _torchscript(step, trace_inputs, check_inputs, tmp)
        else:
            got = _onnx(step, trace_inputs, check_inputs, tmp)
        diff = float((got - expected).abs().max())
        if not diff <= TOLERANCE:
            raise OptiqError(f"the {fmt} export differs from the eager model by {diff:.3g} (> {TOLERANCE:g})", out)
    return diff


def _torchscript(step: OneStep, trace_inputs: tuple, check_inputs: tuple, tmp: Path) -> torch.Tensor:
    with warnings.catch_warnings():
        # Tracing warns about Python ints taken from shapes (the window length is fixed by design), and torch 2.13
        # deprecates TorchScript in favour of torch.export (which the ONNX export uses); it still works.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(step, trace_inputs, check_trace=False)
        torch.jit.save(traced, str(tmp))
        loaded = torch.jit.load(str(tmp))
    with torch.no_grad():
        return loaded(*check_inputs)


def _onnx(step: OneStep, trace_inputs: tuple, check_inputs: tuple, tmp: Path) -> torch.Tensor:
    try:
        import onnxruntime
    except ImportError:
        raise OptiqError('ONNX export needs onnx, onnxscript and onnxruntime: pip install "optiq-models[onnx]"') \
            from None
    names = input_names(step.model)
    batch = torch.export.Dim("batch")
    dynamic = {"x": {0: batch}, "inputs": tuple({0: batch} for _ in names[1:])}
    quiet = logging.getLogger("torch.onnx")  # it logs a line per torchvision op it does not find
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(step, trace_inputs, dynamo=True, input_names=names,
                                        output_names=["next"], dynamic_shapes=dynamic, verbose=False)
    finally:
        quiet.setLevel(level)
    program.save(str(tmp))
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in zip(names, check_inputs, strict=True)}
    return torch.from_numpy(session.run(None, feeds)[0])
