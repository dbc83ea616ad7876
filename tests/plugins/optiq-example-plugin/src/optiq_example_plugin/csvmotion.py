"""csvmotion: a motion clip as one CSV file, readable by any spreadsheet or ``pandas.read_csv(comment="#")``.

Layout (UTF-8, ``\\n`` line ends, comma-separated, optiq's conventions: metres, Z up, quaternions w, x, y, z)::

    # csvmotion 1
    # fps: 120
    # joint: Hips,,0.0,0.0,0.9
    # joint: LeftUpLeg,Hips,0.09,0.0,-0.05
    frame,root_x,root_y,root_z,Hips.qw,Hips.qx,Hips.qy,Hips.qz,LeftUpLeg.qw,...
    0,0.01,0.02,0.9,1.0,0.0,0.0,0.0,1.0,...

- ``# csvmotion 1``: the first line, the format and its version.
- ``# fps: N``: frames per second.
- ``# joint: name,parent,x,y,z``: one line per joint, parents before children; the root's parent is empty.
  ``x,y,z`` is the rest offset from the parent (the root's: its rest position). Names hold no comma.
- the header row: ``frame``, ``root_x..root_z``, then ``<joint>.qw .qx .qy .qz`` for every joint in joint order.
- one row per frame: frame index, root position, local rotation of every joint (identity = rest pose).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from optiq import Clip, OptiqError, ParseError, Skeleton
from optiq.atomic import atomic_text

MAGIC = "# csvmotion 1"


def sniff_csvmotion(path: Path, head: bytes) -> bool:
    return head.startswith(MAGIC.encode())


def _columns(names: tuple[str, ...]) -> list[str]:
    return ["frame", "root_x", "root_y", "root_z"] + [f"{n}.q{c}" for n in names for c in "wxyz"]


def load_csvmotion(path: str | os.PathLike, **_ignored) -> list[Clip]:
    """Read a csvmotion file into one Clip: rotations ``[T, J, 4]`` wxyz, root translation ``[T, 3]`` metres."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParseError(f"cannot read file: {exc}", path) from None
    if not lines[0].startswith(MAGIC):
        raise ParseError(f"expected {MAGIC!r} as the first line", path, "line 1")
    fps, joints, header_at = _read_header(lines, path)
    names = tuple(j[0] for j in joints)
    index = {n: i for i, n in enumerate(names)}
    parents = []
    for name, parent, _off, line in joints:
        if parent and parent not in index:
            raise ParseError(f"joint {name!r}: unknown parent {parent!r}", path, f"line {line}")
        parents.append(index[parent] if parent else -1)
    header = lines[header_at].strip().split(",")
    if header != _columns(names):
        raise ParseError(f"header row does not match the joints: expected {','.join(_columns(names)[:8])},...",
                         path, f"line {header_at + 1}")
    rows = [ln for ln in lines[header_at + 1:] if ln.strip()]
    if not rows:
        raise ParseError("the file has no frames", path, f"line {header_at + 2}")
    width = len(header)
    values = _parse_rows(rows, width, path, header_at + 2)
    skeleton = Skeleton(names, np.array(parents), np.array([j[2] for j in joints]))
    clip = Clip(skeleton, fps, values[:, 1:4], values[:, 4:].reshape(len(rows), len(names), 4), name=path.stem)
    return [clip]


def _read_header(lines: list[str], path: Path) -> tuple[float, list[tuple[str, str, list[float], int]], int]:
    fps = None
    joints = []
    for i, line in enumerate(lines[1:], start=1):
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        key = key.strip()
        try:
            if key == "fps":
                fps = float(value)
            elif key == "joint":
                name, parent, *off = (v.strip() for v in value.split(","))
                joints.append((name, parent, [float(v) for v in off[:3]], i + 1))
                if len(off) != 3:
                    raise ValueError
        except ValueError:
            raise ParseError(f"bad '# {key}:' line, expected {'a number' if key == 'fps' else 'name,parent,x,y,z'}",
                             path, f"line {i + 1}") from None
    else:
        raise ParseError("the file ends inside the '#' header", path, f"line {len(lines)}")
    if fps is None or not fps > 0:
        raise ParseError("missing or non-positive '# fps:' line", path, f"line {i + 1}")
    if not joints:
        raise ParseError("no '# joint:' lines", path, f"line {i + 1}")
    return fps, joints, i


def _parse_rows(rows: list[str], width: int, path: Path, first_line: int) -> np.ndarray:
    """All frame rows in one vectorised parse; only a broken file pays for finding its bad line."""
    try:
        values = np.array(",".join(rows).split(","), dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and values.size == len(rows) * width and np.isfinite(values).all():
        return values.reshape(len(rows), width)
    for k, row in enumerate(rows):
        fields = row.split(",")
        where = f"line {first_line + k}"
        if len(fields) != width:
            raise ParseError(f"{len(fields)} values, expected {width}", path, where)
        for f in fields:
            try:
                ok = np.isfinite(float(f))
            except ValueError:
                ok = False
            if not ok:
                raise ParseError(f"{f.strip()!r} is not a finite number", path, where)
    raise ParseError("unreadable frame rows", path, f"line {first_line}")


def write_csvmotion(clip: Clip, path: str | os.PathLike, **_ignored) -> None:
    """Write ``clip`` as csvmotion (atomic). Clips that animate joint translations cannot be written."""
    if clip.local_translations is not None:
        raise OptiqError(f"clip {clip.name!r} animates joint translations; csvmotion stores rotations only", path)
    sk = clip.skeleton
    bad = [n for n in sk.names if "," in n]
    if bad:
        raise OptiqError(f"joint name {bad[0]!r} holds a comma; csvmotion names cannot", path)
    header = [MAGIC, f"# fps: {clip.fps:.17g}"]
    for name, parent, off in zip(sk.names, sk.parents, sk.offsets, strict=True):
        parent_name = sk.names[parent] if parent >= 0 else ""
        header.append(f"# joint: {name},{parent_name},{off[0]:.17g},{off[1]:.17g},{off[2]:.17g}")
    header.append(",".join(_columns(sk.names)))
    table = np.concatenate([np.arange(clip.num_frames)[:, None], clip.root_translation,
                            clip.rotations.reshape(clip.num_frames, -1)], axis=1)
    with atomic_text(path) as fh:
        fh.write("\n".join(header) + "\n")
        np.savetxt(fh, table, delimiter=",", fmt=["%d"] + ["%.17g"] * (table.shape[1] - 1))
