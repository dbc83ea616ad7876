"""The C3D loader on real marker files, checked against the files' own bytes read by a parser written here (not
the ``c3d`` package optiq uses), and bad input."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq.errors import OptiqError, ParseError

QUALISYS = "c3d/c3dorg_qualisys_Walking_Hybrid_1_1.c3d"
PYOMECA = "c3d/pyomeca_markers_analogs.c3d"


def raw_c3d(path):
    """Header, parameters ``{"GROUP:NAME": value}`` and the float32 point words ``[T, K, 4]`` of an Intel float
    C3D file, parsed from the C3D specification (c3d.org) with struct and numpy only."""
    data = path.read_bytes()
    param_block, magic = data[0], data[1]
    assert magic == 0x50
    first, last = struct.unpack_from("<HH", data, 6)
    scale, data_block = struct.unpack_from("<fH", data, 12)
    base = (param_block - 1) * 512
    assert data[base + 3] == 84  # Intel processor: the only kind these files are
    groups, params, pos = {}, {}, base + 4
    while True:
        name_len, gid = struct.unpack_from("<bb", data, pos)
        if name_len == 0 or gid == 0:
            break
        name = data[pos + 2:pos + 2 + abs(name_len)].decode()
        body = pos + 2 + abs(name_len)
        (offset,) = struct.unpack_from("<h", data, body)
        if gid < 0:
            groups[-gid] = name
        else:
            kind, ndim = struct.unpack_from("<bB", data, body + 2)
            dims = list(data[body + 4:body + 4 + ndim])
            start = body + 4 + ndim
            count = int(np.prod(dims)) if dims else 1
            if kind == -1:  # characters: the first dimension is the string length
                raw = data[start:start + count].decode("latin-1")
                width = dims[0] if dims else 1
                value = [raw[i:i + width].strip() for i in range(0, len(raw), width)] if len(dims) > 1 else raw.strip()
            else:
                dtype = {1: "<i1", 2: "<i2", 4: "<f4"}[kind]
                value = np.frombuffer(data, dtype=dtype, count=count, offset=start)
            params[(gid, name)] = value
        if offset == 0:
            break
        pos = body + offset
    named = {f"{groups[g]}:{n}": v for (g, n), v in params.items()}
    k = int(named["POINT:USED"][0])
    analog = int(named["ANALOG:USED"][0]) * int(round(float(named["ANALOG:RATE"][0]) / float(named["POINT:RATE"][0])))
    frames = last - first + 1
    record = np.dtype([("p", "<f4", (k, 4)), ("a", "<f4", (analog,))])
    points = np.frombuffer(data, dtype=record, count=frames, offset=(data_block - 1) * 512)["p"]
    assert scale < 0  # floating-point data
    return {"first": first, "frames": frames, "params": named, "points": points}


@pytest.fixture(scope="module", params=[QUALISYS, PYOMECA])
def c3d_file(request, data_dir):
    path = data_dir / request.param
    return path, raw_c3d(path), optiq.load_points(path)


def test_markers_frames_rate_units_and_labels_match_the_file(c3d_file):
    path, raw, takes = c3d_file
    assert len(takes) == 1
    pts = takes[0]
    p = raw["params"]
    assert pts.num_points == int(p["POINT:USED"][0]) and pts.num_frames == raw["frames"]
    assert pts.fps == float(p["POINT:RATE"][0])
    assert list(pts.names) == p["POINT:LABELS"][: pts.num_points]  # spaces stripped
    assert (pts.labels["length_unit"], pts.unit, pts.dim) == (p["POINT:UNITS"], "m", 3)
    assert pts.labels["first_frame"] == str(raw["first"]) and pts.name == path.stem


def test_positions_are_the_file_words_in_metres_z_up(c3d_file):
    _, raw, takes = c3d_file
    pts = takes[0]
    words = raw["points"]
    mm = {"mm": 0.001, "m": 1.0}[raw["params"]["POINT:UNITS"]]
    ok = pts.valid
    # Both files are Z up (the c3d.org sample has no screen axes; the pyomeca one says Y_SCREEN +Z): no rotation.
    np.testing.assert_array_equal(pts.positions[ok], words[..., :3][ok].astype(np.float64) * mm)
    t, k = np.argwhere(ok)[len(np.argwhere(ok)) // 2]
    assert pts.positions[t, k, 2] == pytest.approx(float(words[t, k, 2]) * mm, rel=1e-12)


def test_invalid_samples_are_missing_not_made_up(c3d_file):
    """The 4th word is (cameras << 8 | residual) as a 16-bit integer stored in a float; -1 means invalid. pyomeca
    writes it as -1.0, Qualisys as 65535.0 (0xFFFF): the c3d package's read_frames keeps those as valid (0, 0, 0)
    markers."""
    path, raw, takes = c3d_file
    pts = takes[0]
    word = raw["points"][..., 3]
    invalid = (word == -1.0) | (word == 65535.0)
    expected = {QUALISYS.split("/")[1]: 3902, PYOMECA.split("/")[1]: 305}[path.name]
    assert invalid.sum() == expected
    np.testing.assert_array_equal(~pts.valid, invalid)
    assert np.isnan(pts.positions[invalid]).all() and (pts.confidence[invalid] == 0).all()
    assert (pts.confidence[~invalid] == 1).all() and np.isfinite(pts.positions[~invalid]).all()


def test_up_and_unit_options(data_dir):
    path = data_dir / PYOMECA
    z = optiq.load_points(path)[0]
    y = optiq.load_points(path, up="y")[0]
    # Y up: file (x, y, z) -> optiq (z, x, y), optiq's Z is the file's Y.
    np.testing.assert_allclose(y.positions[..., 2], z.positions[..., 1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(y.positions[..., 0], z.positions[..., 2], rtol=0, atol=1e-15)
    m = optiq.load_points(path, unit="m")[0]
    np.testing.assert_allclose(m.positions, z.positions * 1000, rtol=1e-12)
    assert m.labels["length_unit"] == "m" and z.labels["up"] == "z" and y.labels["up"] == "y"
    # The markers of the seated subject are above the floor in optiq's Z (metres).
    assert 0.0 < np.nanmin(z.positions[..., 2]) and np.nanmax(z.positions[..., 2]) < 1.5


def test_skeleton_options_and_clip_api_are_refused(data_dir):
    path = data_dir / PYOMECA
    with pytest.raises(OptiqError, match="drop-tpose does not apply to C3D marker files"):
        optiq.load_points(path, drop_tpose=True)
    with pytest.raises(OptiqError, match="does not take option 'frames'"):
        optiq.load_points(path, frames=3)
    with pytest.raises(OptiqError, match=r"holds points \(loader 'c3d'.*optiq.load_points"):
        optiq.load(path)
    with pytest.raises(OptiqError, match="option unit='furlong': unknown length unit 'furlong'"):
        optiq.load_points(path, unit="furlong")
    with pytest.raises(OptiqError, match="option up='x': expected 'auto', 'y' or 'z'"):
        optiq.load_points(path, up="x")


@pytest.mark.parametrize("cut", [600, 200_000])
def test_truncated_file_is_one_error_naming_file_and_frame(data_dir, tmp_path, cut):
    src = (data_dir / QUALISYS).read_bytes()
    bad = tmp_path / "cut.c3d"
    bad.write_bytes(src[:cut])
    with pytest.raises(ParseError) as err:
        optiq.load_points(bad)
    assert str(err.value).startswith(f"{bad}: ")
    if cut == 200_000:  # data: 672 frames of (25 * 4 + 16) float32 words = 464 bytes, from byte 5632
        assert str(err.value) == f"{bad}: frame {(cut - 5632) // 464}: truncated: the data section holds " \
                                 f"{(cut - 5632) // 464} of 672 frames (464 bytes each)"


def test_bad_input_through_the_cli(data_dir, tmp_path):
    not_c3d = tmp_path / "walk.c3d"
    shutil.copy(data_dir / "bvh" / "bvhio_example.bvh", not_c3d)
    out = tmp_path / "m.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(not_c3d), "--out", str(out)])
    assert r.exit_code == 2
    assert r.output == (f"optiq: error: {not_c3d}: header: not a C3D file: expected a 512-byte header whose "
                        "second byte is 0x50\n")
    assert not out.exists() and list(tmp_path.iterdir()) == [not_c3d]
    r = CliRunner().invoke(build_cli(), ["data", "info", str(not_c3d)])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "not a C3D file" in r.output


class _Param:
    def __init__(self, labels):
        self.string_array = np.array(labels)


class _Reader:
    """The two things ``_labels`` asks of a ``c3d.Reader``: POINT:USED and the POINT:LABELS parameters."""

    def __init__(self, used, **labels):
        self.point_used, self._params = used, {k: _Param(v) for k, v in labels.items()}

    def get(self, key):
        return self._params.get(key)


def test_marker_names_are_unique_and_never_empty(tmp_path):
    from optiq.loaders.c3d import _labels

    reader = _Reader(6, **{"POINT:LABELS": ["A ", "A", "A_2", ""], "POINT:LABELS2": ["B", "A"]})
    assert _labels(reader, tmp_path / "x.c3d") == ["A", "A_2", "A_2_2", "marker3", "B", "A_3"]
    with pytest.raises(ParseError, match=r"x.c3d: POINT:USED: the file holds no markers"):
        _labels(_Reader(0), tmp_path / "x.c3d")
