"""Motion as tokens: a tokenizer (a model of ``kind = "tokenizer"``, the ``vqvae``) turns each clip into codebook
ids and decodes ids back into motion.

``encode_clips("vq.pt", "walks.parquet", split="test")`` -> a pyarrow Table, one row per clip, that
``write_tokens`` stores as Parquet (``pandas.read_parquet`` reads it); ``decode_tokens("vq.pt", "tokens.parquet")``
-> Clips on the model's skeleton, which ``write_clips`` writes to any motion file or dataset.

A clip of T frames is padded at its end to a multiple of the model's ``downsample`` (the last frame repeated),
encoded into ``N = ceil(T / downsample)`` codes per codebook, and its decoded frames are cropped back to T.

Columns of the tokens file (docs/models.md, "Tokens and evaluation of the VQ-VAE"):

==================  =====================  ===================================================================
column              type                   meaning
==================  =====================  ===================================================================
``clip``            string                 clip name
``frames``          int32                  T, frames of the clip
``fps``             float64                its frame rate
``downsample``      int32                  frames per code of the model
``codebook_size``   int32                  codes per codebook of the model
``num_quantizers``  int32                  Q, codebooks (1, or more for residual quantisation)
``model``           string                 the model's fingerprint (:func:`fingerprint`)
``tokens``          list<list<int32>>      ids ``[N][Q]`` in ``[0, codebook_size)``
``start_position``  list<float64>          world position ``[3]`` (m) of the clip's root at frame 0
``start_yaw``       float64                its heading (rad) at frame 0
(labels)            string                 one column per clip label (``label_<name>`` if a name is taken)
==================  =====================  ===================================================================
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optiq import OptiqError
from optiq.atomic import atomic_path, check_output_path

from . import data as D
from .evaluate import Loaded, _start_pose, check_skeleton, clips_of, load_model, write_clips

TOKENIZER = "tokenizer"
COLUMNS = ("clip", "frames", "fps", "downsample", "codebook_size", "num_quantizers", "model", "tokens",
           "start_position", "start_yaw")


class TokensError(OptiqError):
    """A tokens file that this model cannot decode, or a clip that it cannot encode."""


def load_tokenizer(model: str | os.PathLike | Loaded, device: str = "cpu") -> Loaded:
    """A tokenizer checkpoint loaded (``evaluate.load_model``); any other kind of model raises TokensError."""
    if isinstance(model, Loaded):
        loaded = model
    else:
        loaded = load_model(model, device, kinds=("next_state", TOKENIZER))
    kind = getattr(loaded.model, "kind", "next_state")
    if kind != TOKENIZER:
        raise TokensError(f"model {loaded.name!r} is a {kind} model, not a tokenizer: optiq tokens needs a model "
                          "trained with arch vqvae", loaded.checkpoint.path)
    return loaded


def fingerprint(model: torch.nn.Module) -> str:
    """First 16 hex digits of the sha256 of the model's weights (every tensor of its state dict, by name): tokens
    decode only with the model whose codebooks and decoder made them."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --- features <-> ids ----------------------------------------------------------------------------------------
def _device(loaded: Loaded) -> torch.device:
    return next(loaded.model.parameters()).device


@torch.no_grad()
def encode_features(loaded: Loaded, raw: np.ndarray) -> np.ndarray:
    """Codebook ids ``[N, Q]`` int64 of one clip's raw features ``[T, F]`` (T >= downsample): normalised,
    padded at the end to ``N * downsample`` frames by repeating the last one, encoded."""
    ds = int(loaded.model.downsample)
    x = np.asarray(loaded.normalizer.normalize(np.asarray(raw, dtype=np.float32)), dtype=np.float32)
    pad = -len(x) % ds
    x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x
    ids = loaded.model.encode(torch.from_numpy(x)[None].to(_device(loaded)))
    return ids[0].cpu().numpy().astype(np.int64)


@torch.no_grad()
def decode_ids(loaded: Loaded, ids: np.ndarray, frames: int) -> np.ndarray:
    """Raw features ``[frames, F]`` float32 decoded from ids ``[N, Q']`` (Q' <= the model's codebooks: the first
    Q'), cropped to ``frames``."""
    t = torch.from_numpy(np.asarray(ids, dtype=np.int64))[None].to(_device(loaded))
    x = loaded.model.decode(t)[0, :frames].cpu().numpy()
    return np.asarray(loaded.normalizer.denormalize(x), dtype=np.float32)


def reconstruct(loaded: Loaded, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reconstruction ``[T, F]`` raw features, ids ``[N, Q]``) of one clip's raw features ``[T, F]``: what the
    tokens of the clip decode to."""
    ids = encode_features(loaded, raw)
    return decode_ids(loaded, ids, len(raw)), ids


def check_length(loaded: Loaded, name: str, frames: int, where: Any = None) -> None:
    """TokensError when a clip of ``frames`` frames is shorter than one code's worth of frames."""
    ds = int(loaded.model.downsample)
    if frames < ds:
        raise TokensError(f"clip {name!r} has {frames} frames, fewer than the {ds} frames per code the model "
                          "downsamples by", where)


# --- encode --------------------------------------------------------------------------------------------------
def encode_clips(model: str | os.PathLike | Loaded, data: Any, split: str = "all", *,
                 cache_dir: str | os.PathLike | None = None, device: str = "cpu"):
    """The tokens of the clips of ``data``'s ``split`` (``all``, or a side of the split saved with the model) as
    a pyarrow Table (module docstring). Raises TokensError for a model that is not a tokenizer, a clip shorter
    than ``downsample`` frames, or no clip to encode, before any encoding."""
    import pyarrow as pa

    loaded = load_tokenizer(model, device)
    source = data if isinstance(data, D.Source) else D.open_source(data, cache_dir=cache_dir)
    try:
        check_skeleton(source, loaded, loaded.checkpoint.path or "model")
        names = clips_of(source, loaded, split)
        if not names:
            raise TokensError(f"no clip to encode: the dataset holds no clip ({split} split)", source.path)
        for name in names:
            check_length(loaded, name, source.num_frames(name), source.path)
        store = D.build_store(source, loaded.spec, cache_dir=cache_dir)
        rows = []
        for name in names:
            ids = encode_features(loaded, np.asarray(store.clip(name)))
            position, yaw = _start_pose(source.read_clip(name), loaded)
            start = np.zeros(3) if position is None else np.asarray(position, dtype=np.float64)
            rows.append({"clip": name, "frames": source.num_frames(name), "fps": source.fps(name),
                         "tokens": ids.astype(np.int32).tolist(), "start_position": start[:3].tolist(),
                         "start_yaw": float(yaw), "labels": source.labels[name]})
    finally:
        if source is not data:
            source.close()
    m = loaded.model
    columns: dict[str, Any] = {
        "clip": pa.array([r["clip"] for r in rows], pa.string()),
        "frames": pa.array([r["frames"] for r in rows], pa.int32()),
        "fps": pa.array([r["fps"] for r in rows], pa.float64()),
        "downsample": pa.array([int(m.downsample)] * len(rows), pa.int32()),
        "codebook_size": pa.array([int(m.codebook_size)] * len(rows), pa.int32()),
        "num_quantizers": pa.array([int(m.num_quantizers)] * len(rows), pa.int32()),
        "model": pa.array([fingerprint(m)] * len(rows), pa.string()),
        "tokens": pa.array([r["tokens"] for r in rows], pa.list_(pa.list_(pa.int32()))),
        "start_position": pa.array([r["start_position"] for r in rows], pa.list_(pa.float64())),
        "start_yaw": pa.array([r["start_yaw"] for r in rows], pa.float64()),
    }
    for key in sorted({k for r in rows for k in r["labels"]}):
        column = key if key not in columns else f"label_{key}"
        columns[column] = pa.array([r["labels"].get(key) for r in rows], pa.string())
    return pa.table(columns)


def write_tokens(table: Any, out: str | os.PathLike) -> Path:
    """Write a tokens table as Parquet, atomically."""
    import pyarrow.parquet as pq

    with atomic_path(out, suffixes=(".parquet",)) as tmp:
        pq.write_table(table, tmp)
    return Path(out)


def encode(model: str | os.PathLike, data: Any, out: str | os.PathLike, *, split: str = "all",
           cache_dir: str | os.PathLike | None = None, device: str = "cpu"):
    """``optiq tokens encode``: :func:`encode_clips` written to ``out`` (``.parquet``); returns the table."""
    check_output_path(out, suffixes=(".parquet",), what="tokens file")
    table = encode_clips(model, data, split, cache_dir=cache_dir, device=device)
    write_tokens(table, out)
    return table


# --- decode --------------------------------------------------------------------------------------------------
def read_tokens(path: str | os.PathLike):
    """The tokens table of a file :func:`write_tokens` wrote; TokensError for a file that is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise TokensError("no such tokens file" if not path.exists() else "not a file", path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise TokensError(f"not a Parquet tokens file ({first})", path) from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise TokensError(f"not a tokens file: no column {', '.join(map(repr, missing))} (optiq tokens encode "
                          "writes them)", path)
    if table.num_rows == 0:
        raise TokensError("the tokens file holds no clip", path)
    return table


def check_tokens(loaded: Loaded, table: Any, path: Any = None) -> list[np.ndarray]:
    """The ids ``[N, Q']`` of every row of ``table``, checked against the model: downsampling, codebook size,
    number of codebooks, fingerprint, frame count against N, and every id in ``[0, codebook_size)``. The first
    mismatch raises TokensError naming the row's clip and both values."""
    m = loaded.model
    mine = {"downsample": int(m.downsample), "codebook_size": int(m.codebook_size)}
    col = {c: table.column(c).to_pylist() for c in ("clip", "frames", "downsample", "codebook_size",
                                                   "num_quantizers", "model")}
    own = fingerprint(m)
    out = []
    for i, name in enumerate(col["clip"]):
        where = f"row {i} (clip {name!r})"
        for key, value in mine.items():
            if col[key][i] != value:
                raise TokensError(f"tokens from another model: {key} {col[key][i]}, this model's is {value}",
                                  path, where)
        if col["num_quantizers"][i] > int(m.num_quantizers):
            raise TokensError(f"tokens from another model: {col['num_quantizers'][i]} codebooks, this model has "
                              f"{int(m.num_quantizers)}", path, where)
        if col["model"][i] != own:
            raise TokensError(f"tokens from another model: made by model {col['model'][i]}, this model is {own} "
                              "(the same sizes, other weights)", path, where)
        ids = _ids(table.column("tokens")[i].as_py(), path, where)
        frames = int(col["frames"][i])
        check_length(loaded, name, frames, path)
        n = -(-frames // mine["downsample"])
        if ids.shape != (n, col["num_quantizers"][i]):
            raise TokensError(f"expected {n} codes of {col['num_quantizers'][i]} ids for {frames} frames, got "
                              f"shape {list(ids.shape)}", path, where)
        bad = (ids < 0) | (ids >= mine["codebook_size"])
        if bad.any():
            k = int(np.argmax(bad.any(axis=1)))
            raise TokensError(f"token id {int(ids[k][bad[k]][0])} at code {k} is out of range [0, "
                              f"{mine['codebook_size']})", path, where)
        out.append(ids)
    return out


def _ids(value: Any, path: Any, where: str) -> np.ndarray:
    try:
        ids = np.array(value, dtype=np.int64)
    except (TypeError, ValueError):
        raise TokensError("tokens are not a list of lists of integers", path, where) from None
    if ids.ndim != 2:
        raise TokensError(f"tokens must be [codes][codebooks], got {ids.ndim} dimensions", path, where)
    return ids


def decode_tokens(model: str | os.PathLike | Loaded, tokens: str | os.PathLike | Any, *,
                  device: str = "cpu") -> list:
    """The clips that a tokens file (or table) describes: each row decoded, denormalised, defeaturized onto the
    model's skeleton at the clip's fps and start pose, cropped to its frames, with its labels. Every row is
    checked (:func:`check_tokens`) before any is decoded."""
    from optiq.features import defeaturize

    loaded = load_tokenizer(model, device)
    path = tokens if isinstance(tokens, (str, os.PathLike)) else None
    table = read_tokens(tokens) if path is not None else tokens
    all_ids = check_tokens(loaded, table, path)
    labels_of = label_columns(table)
    rows = table.select([c for c in table.column_names if c != "tokens"]).to_pylist()
    clips = []
    for row, ids in zip(rows, all_ids, strict=True):
        raw = decode_ids(loaded, ids, int(row["frames"]))
        clip = defeaturize(raw, loaded.checkpoint.skeleton, loaded.spec, float(row["fps"]),
                           start_position=row["start_position"], start_yaw=float(row["start_yaw"]),
                           name=str(row["clip"]))
        clips.append(clip.with_labels({k: str(row[c]) for c, k in labels_of.items() if row[c] is not None}))
    return clips


def decode(model: str | os.PathLike, tokens: str | os.PathLike, out: str | os.PathLike, *,
           device: str = "cpu") -> list:
    """``optiq tokens decode``: :func:`decode_tokens` written to ``out`` (a dataset, or for one clip any motion
    file); returns the clips."""
    check_output_path(out, inputs=[tokens])
    clips = decode_tokens(model, tokens, device=device)
    write_clips(clips, out)
    return clips


def token_stats(ids: Sequence[np.ndarray], codebook_size: int) -> dict[str, list[float]]:
    """Codebook usage (% of the codes of each codebook that occur) and perplexity (exp of the entropy of each
    codebook's code histogram: the number of equally used codes that would give the same entropy) over the
    ids ``[N_i, Q]`` of several clips."""
    flat = np.concatenate([np.asarray(i) for i in ids])  # [sum N, Q]
    counts = np.stack([np.bincount(flat[:, q], minlength=codebook_size) for q in range(flat.shape[1])])
    p = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    entropy = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(1)
    return {"usage_percent": [round(float(100 * (c > 0).mean()), 2) for c in counts],
            "perplexity": [round(float(v), 2) for v in np.exp(entropy)]}


def label_columns(table: Any) -> Mapping[str, str]:
    """Column -> label name of the label columns of a tokens table (``label_frames`` is label ``frames``, whose
    own name a fixed column takes)."""
    return {c: c.removeprefix("label_") if c.removeprefix("label_") in COLUMNS else c
            for c in table.column_names if c not in COLUMNS}
