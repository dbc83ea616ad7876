"""C3D marker files (biomechanics labs: Vicon, Qualisys, Motion Analysis) -> Points.

The header and parameter section (groups, processor formats) are parsed by the ``c3d`` package (pure Python);
the data section is read here with one numpy call over all frames, because ``c3d.Reader.read_frames`` loops over
frames in Python, returns a partial result without an error for a truncated file, and misses the invalid flag
that Qualisys writes as the float 65535.0 (the 16-bit word -1).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..axes import Y_UP_TO_Z_UP, Z_UP, length_scale
from ..errors import OptiqError, ParseError
from ..points import Points
from .common import snap_fps

MAGIC = 0x50


def sniff_c3d(path: Path, head: bytes) -> bool:
    """The C3D magic: the second byte of the header is 0x50."""
    return len(head) >= 2 and head[1] == MAGIC


def load_c3d(path: str | Path, *, unit: str | float | None = None, up: str = "auto",
             drop_tpose: bool = False) -> list[Points]:
    """Marker trajectories of a C3D file as one Points (``[T, K, 3]`` metres, Z up, named after the file).

    unit: the file's length unit when ``POINT:UNITS`` is wrong or missing (``"mm"``, ``"m"``, a number of metres);
    by default (or ``"auto"``) the file's (``mm`` when it does not say, the C3D default).
    up: ``"auto"`` (from ``POINT:Y_SCREEN``, the axis a lab's software shows upwards; ``z`` when absent), ``"y"``
    or ``"z"``. The frame rate is
    ``POINT:RATE``. A sample flagged invalid (negative residual word) is missing: confidence 0, NaN position; every
    other sample has confidence 1 (C3D residuals are lengths, not probabilities).
    drop_tpose: taken so that a skeleton option is refused rather than ignored: True is an error.
    Labels: ``source``, ``format=c3d``, ``length_unit``, ``up``, ``first_frame`` (the file's number of frame 0).
    """
    path = Path(path)
    if drop_tpose:
        raise OptiqError("--drop-tpose does not apply to C3D marker files (markers have no skeleton or T-pose)", path)
    reader, data = _reader(path)
    names = _labels(reader, path)
    k = len(names)
    positions, invalid = _read_points(reader, data, path, k)
    scale, unit_name = _unit(reader, path, unit)
    up_axis = _up_axis(reader, path, up)
    # Points turns a sample of confidence 0 into NaN: the invalid flag is all it needs.
    pts = Points(positions, names, snap_fps(_rate(reader, path)), confidence=(~invalid).astype(np.float64),
                 name=path.stem, labels={"source": path.name, "format": "c3d", "length_unit": unit_name, "up": up_axis,
                                         "first_frame": str(reader.first_frame)})
    return [pts.transformed(Y_UP_TO_Z_UP if up_axis == "y" else Z_UP, scale, unit="m")]


def _reader(path: Path) -> tuple:
    """A ``c3d.Reader`` over the file's header and parameters, and the file's bytes."""
    import io

    import c3d

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror}", path) from None
    if len(data) < 512 or data[1] != MAGIC:
        raise ParseError("not a C3D file: expected a 512-byte header whose second byte is 0x50", path, "header")
    try:
        with warnings.catch_warnings():
            # c3d warns about quirks it then handles (duplicate group names, big-endian hosts); errors are ours.
            warnings.simplefilter("ignore")
            reader = c3d.Reader(io.BytesIO(data))
    except Exception as exc:  # c3d raises bare struct/assert/value errors on damaged parameter sections
        raise ParseError(f"damaged parameter section ({type(exc).__name__}: {exc})", path, "parameters") from None
    return reader, data


def _labels(reader, path: Path) -> list[str]:
    """``POINT:LABELS`` (continued in ``LABELS2``, ``LABELS3``... past 255 markers), spaces stripped; an empty
    label becomes ``marker<i>`` and a repeated one gets ``_2``, ``_3``... so that names stay unique."""
    k = int(reader.point_used)
    found: list[str] = []
    for key in ["POINT:LABELS", *(f"POINT:LABELS{i}" for i in range(2, 100))]:
        param = reader.get(key)
        if param is None or len(found) >= k:
            break
        found.extend(str(s).strip() for s in np.atleast_1d(param.string_array))
    if k == 0:
        raise ParseError("the file holds no markers (POINT:USED is 0)", path, "POINT:USED")
    names: list[str] = []
    used: set[str] = set()
    for i in range(k):
        base = found[i] if i < len(found) and found[i] else f"marker{i}"
        # The suffix is checked against every name so far: labels A, A, A_2 become A, A_2, A_2_2.
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names.append(name)
    return names


def _rate(reader, path: Path) -> float:
    rate = float(reader.point_rate)
    if not np.isfinite(rate) or rate <= 0:
        raise ParseError(f"frame rate {rate} is not positive", path, "POINT:RATE")
    return rate


def _read_points(reader, data: bytes, path: Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``[T, K, 3]`` float64 in file units and the invalid mask ``[T, K]`` of the data section."""
    frames = int(reader.frame_count)
    if frames <= 0:
        raise ParseError(f"the file holds no frames (first frame {reader.first_frame}, last {reader.last_frame})",
                         path, "header")
    is_float = reader.point_scale < 0
    proc = reader.proc_type  # INTEL, DEC or MIPS
    order = ">" if proc == "MIPS" else "<"
    word = np.dtype(f"{order}f4") if is_float else np.dtype(f"{order}i2")
    if is_float:
        analog_word = word
    else:
        analog_word = np.dtype(f"{order}{'u2' if reader.analog_format_unsigned else 'i2'}")
    n_analog = int(reader.analog_used) * int(reader.analog_per_frame) if reader.analog_used > 0 else 0
    # DEC floats are read as raw 4-byte words and converted below.
    point_dtype = np.dtype("V4") if is_float and proc == "DEC" else word
    record = np.dtype([("p", point_dtype, (k, 4)), ("a", analog_word, (n_analog,))])
    start = (int(reader.header.data_block) - 1) * 512
    available = max(len(data) - start, 0) // record.itemsize
    if available < frames:
        raise ParseError(f"truncated: the data section holds {available} of {frames} frames "
                         f"({record.itemsize} bytes each)", path, f"frame {available}")
    raw = np.frombuffer(data, dtype=record, count=frames, offset=start)["p"]
    if point_dtype.kind == "V":
        import c3d

        raw = c3d.c3d.DEC_to_IEEE_BYTES(raw.tobytes()).reshape(frames, k, 4)
    xyz = raw[..., :3].astype(np.float64)
    if not is_float:
        xyz *= abs(float(reader.point_scale))
    # The fourth word packs (camera mask << 8 | residual) in 16 bits; negative means invalid. Float files store
    # it as a float holding the integer, some as -1.0 and others (Qualisys) as 65535.0: both are the word -1.
    last = raw[..., 3]
    if is_float:
        last = np.nan_to_num(last.astype(np.float64), nan=-1.0)
        last = np.clip(last, -32768, 65535).astype(np.int32).astype(np.uint16).view(np.int16)
    invalid = (last < 0) | ~np.isfinite(xyz).all(axis=2)
    return xyz, invalid


def _unit(reader, path: Path, unit: str | float | None) -> tuple[float, str]:
    """Metres per file unit and its name: ``unit`` when given, else ``POINT:UNITS`` (mm when absent)."""
    given = unit is not None and str(unit).lower() != "auto"  # "auto": C3D files state their unit
    if not given:
        param = reader.get("POINT:UNITS")
        unit = (param.string_value.strip() if param is not None else "") or "mm"
    try:
        scale, name = length_scale(unit)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"length unit must be positive, got {unit!r}")
    except ValueError as exc:
        if given:
            raise OptiqError(f"option unit={unit!r}: {exc}", path) from None
        raise ParseError(f"{exc}; pass unit= to say what the file holds", path, "POINT:UNITS") from None
    return scale, name


def _up_axis(reader, path: Path, up: str) -> str:
    """``"y"`` or ``"z"``: ``up`` when given, else the axis of ``POINT:Y_SCREEN`` (``+Z`` or ``+Y``), else z."""
    up = str(up).lower()
    if up in ("y", "z"):
        return up
    if up != "auto":
        raise OptiqError(f"option up={up!r}: expected 'auto', 'y' or 'z'", path)
    param = reader.get("POINT:Y_SCREEN")
    screen = param.string_value.strip().upper() if param is not None else ""
    if not screen:
        return "z"
    if screen in ("+Z", "Z"):
        return "z"
    if screen in ("+Y", "Y"):
        return "y"
    raise ParseError(f"the vertical screen axis is {screen!r}; optiq reads +Y or +Z up: pass up='y' or up='z'",
                     path, "POINT:Y_SCREEN")
