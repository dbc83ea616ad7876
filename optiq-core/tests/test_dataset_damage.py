"""Datasets never hold what cannot be read back (names, values beyond float32), and damaged datasets fail with one
line naming the file: real converted datasets damaged byte by byte, column by column; reading after close; a full
disk."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import optiq
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from optiq.datasets import format_for, open_dataset, write_dataset
from optiq.datasets.labels import relabel
from optiq.errors import DatasetError, ParseError
from optiq.names import check_name, safe_name

WALK, WALK12 = "cmu_02_01_bvhtodeepmimic", "cmu_12_01_walk_pybvh"
SUFFIXES = [".parquet", ".h5"]


def bvh_facts(path: Path) -> tuple[list[str], int]:
    """Joint names (file order) and the frame count as the BVH text states them (read without optiq)."""
    text = path.read_text()
    names = re.findall(r"^\s*(?:ROOT|JOINT)\s+(\S+)", text, flags=re.M)
    return names, int(re.search(r"Frames:\s*(\d+)", text).group(1))


@pytest.fixture(scope="module")
def clips(data_dir):
    return [optiq.load_clip(data_dir / "bvh" / f"{n}.bvh", drop_tpose=True) for n in (WALK, WALK12)]


@pytest.fixture(scope="module")
def converted(clips, tmp_path_factory):
    """Both CMU walks in both formats; small row groups and chunks so that clips span several."""
    d = tmp_path_factory.mktemp("good")
    return {".parquet": write_dataset(d / "ds.parquet", clips, row_group_frames=100),
            ".h5": write_dataset(d / "ds.h5", clips, chunk_frames=64)}


def _copy(converted, suffix, tmp_path) -> Path:
    out = tmp_path / f"damaged{suffix}"
    shutil.copy(converted[suffix], out)
    return out


def _flip(path: Path, offset: int, n: int = 32) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + n] = bytes(b ^ 0xFF for b in data[offset:offset + n])
    path.write_bytes(bytes(data))


def _rewrite_parquet(path: Path, change) -> None:
    """Rewrite a Parquet dataset with ``change(table) -> table``, keeping its optiq header."""
    header = pq.ParquetFile(path).metadata.metadata[b"optiq"]
    pq.write_table(change(pq.read_table(path)).replace_schema_metadata({b"optiq": header}), path)


def _fails_in_one_line(path: Path, read=lambda ds: ds.read_clip(WALK12), match: str = "") -> DatasetError:
    """Open ``path`` and read from it: a DatasetError naming the file (at open or at the read), nothing else."""
    with pytest.raises(DatasetError) as err:
        with open_dataset(path) as ds:
            read(ds)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert re.search(match, message), message
    return err.value


@pytest.mark.parametrize(("text", "name"), [("walk/run", "walk_run"), (" take\t1\n", "take_1_"),
                                             ("a\x00b\x85c", "a_b_c"), ("..", "clip"), ("  ", "clip"),
                                             ("x" * 300, "x" * 255)])
def test_safe_name_makes_names_the_rule_accepts(text, name):
    assert safe_name(text, "clip") == name
    assert check_name(safe_name(text, "clip"), "clip name") == name


# --- 1. names ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, problem", [
    ("", "is empty"), ("a/b", "contains '/'"), ("a\x00b", "control character"), ("tab\there", "control character"),
    (" walk", "whitespace"), ("walk\n", "control character"), (".", "path component"), ("..", "path component"),
    ("x" * 256, "256 characters"),
])
def test_check_name_refuses(name, problem):
    with pytest.raises(DatasetError, match=re.escape(problem)):
        check_name(name, "clip name", "ds.h5")
    assert check_name("dataset-1_walk_happy 001.bvh", "clip name") == "dataset-1_walk_happy 001.bvh"
    assert check_name("x" * 255, "clip name") == "x" * 255


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("label", ["a/b", ""])
def test_bad_frame_label_names_are_refused_and_nothing_is_written(clips, tmp_path, suffix, label):
    # Before: HDF5 stored "a/b" as nested groups and read_clip then failed with a KeyError traceback.
    clip = clips[0].with_labels(frame_labels={label: np.arange(clips[0].num_frames)})
    out = tmp_path / f"ds{suffix}"
    with pytest.raises(DatasetError, match="frame label name") as err:
        write_dataset(out, [clip])
    assert str(err.value).startswith(f"{out}: ")  # the output, not its temporary part file
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_clip_names_and_label_keys_follow_one_rule_in_every_format(clips, tmp_path, suffix):
    # Parquet could hold "walks/02_01", but the dataset could then not be converted to HDF5.
    with pytest.raises(DatasetError, match=r"clip name 'walks/02_01' contains '/'"):
        write_dataset(tmp_path / f"ds{suffix}", [clips[0].replace(name="walks/02_01")])
    with pytest.raises(DatasetError, match=r"clip label key 'style\\n' contains the control character"):
        write_dataset(tmp_path / f"ds{suffix}", [clips[0].with_labels({"style\n": "happy"})])
    assert list(tmp_path.iterdir()) == []


def test_data_label_checks_names_in_the_frame_labels_file(converted, tmp_path):
    labels_file = tmp_path / "labels.json"
    labels_file.write_text(json.dumps({WALK: {"a/b": {"segments": [], "default": 1}}}))
    with pytest.raises(ParseError, match=r"labels.json: frame label name 'a/b' contains '/'"):
        relabel(converted[".h5"], tmp_path / "out.h5", frame_labels=labels_file)
    labels_file.write_text(json.dumps({WALK: {"rotations": {"segments": [], "default": 1}}}))
    with pytest.raises(ParseError, match=r"labels.json: clip '.*': frame label name 'rotations' is a motion field"):
        relabel(converted[".h5"], tmp_path / "out.h5", frame_labels=labels_file)
    with pytest.raises(DatasetError, match=r"clip label key is empty"):
        relabel(converted[".h5"], tmp_path / "out.h5", labels={"": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json"]


@pytest.mark.parametrize("doc, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (json.dumps({WALK: {"style": {"segments": [[0, 10, [1, 2]]], "default": 0}}}), "found int, list"),
    (json.dumps({WALK: {"style": [[1]] * 343}}), "found list"),
    (json.dumps({WALK: {"style": [{"a": 1}] * 343}}), "found dict"),
    (json.dumps({WALK: {"style": {"segments": [[True, 10, "x"]], "default": "y"}}}), "expected .* integer frames"),
])
def test_data_label_refuses_deep_nesting_and_lists_as_values(converted, tmp_path, doc, message):
    labels_file = tmp_path / "labels.json"
    labels_file.write_text(doc)
    with pytest.raises(ParseError, match=message) as err:
        relabel(converted[".parquet"], tmp_path / "out.parquet", frame_labels=labels_file)
    assert str(err.value).startswith(str(labels_file))


# --- 2. values beyond float32 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_values_beyond_float32_are_refused_naming_clip_frame_and_joint(data_dir, clips, tmp_path, suffix):
    names, _ = bvh_facts(data_dir / "bvh" / f"{WALK}.bvh")
    huge = clips[0].transformed(np.eye(3), 1e300)
    assert np.isfinite(huge.root_translation).all()  # finite in float64, beyond float32's 3.4e38
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's float32 overflow warning must not reach the user
        with pytest.raises(DatasetError, match=rf"clip '{WALK}', frame 0, joint '{names[0]}': root_translation "
                                               r"is -?inf \(beyond float32"):
            write_dataset(tmp_path / f"ds{suffix}", [clips[1], huge])
    assert list(tmp_path.iterdir()) == []
    # A NaN among arrays given to store as they are (velocities copied from another dataset) is named the same way.
    vel = clips[0].angular_velocities()
    vel[40, 7, 2] = np.nan
    with pytest.raises(DatasetError, match=rf"frame 40, joint '{names[7]}': angular_velocities is NaN"):
        with format_for(f"ds{suffix}").writer(tmp_path / f"ds{suffix}", clips[0].skeleton, velocities=True) as w:
            w.add(clips[0], {"angular_velocities": vel})
    assert list(tmp_path.iterdir()) == []


def test_a_bvh_holding_1e308_is_refused_at_its_frame(data_dir, tmp_path):
    text = (data_dir / "bvh" / f"{WALK}.bvh").read_text()
    head, motion = text.split("MOTION", 1)
    lines = motion.split("\n")
    row = next(k for k, line in enumerate(lines) if line.startswith("Frame Time")) + 1 + 10  # frame 10
    values = lines[row].split()
    values[0] = "1e308"  # the root's X position: finite in float64 (also in metres), beyond float32
    lines[row] = " ".join(values)
    src = tmp_path / "big.bvh"
    src.write_text(head + "MOTION" + "\n".join(lines))
    with pytest.raises(DatasetError, match=r"clip 'big', frame 10, joint 'Hips': root_translation is inf"):
        write_dataset(tmp_path / "ds.h5", [optiq.load_clip(src)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bvh"]


def test_convert_scale_1e300_is_one_line_and_writes_nothing(data_dir, tmp_path):
    out = tmp_path / "ds.parquet"
    r = subprocess.run([sys.executable, "-m", "optiq", "data", "convert", "--in",
                        str(data_dir / "bvh" / f"{WALK}.bvh"), "--out", str(out), "--scale", "1e300"],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"optiq: error: {out}: clip '{WALK}', frame 0, joint 'Hips'")
    assert "float32" in lines[0]
    assert list(tmp_path.iterdir()) == []


# --- 3. damaged but openable datasets ---------------------------------------------------------------------------
def test_flipped_bytes_in_an_hdf5_gzip_chunk(converted, tmp_path):
    path = _copy(converted, ".h5", tmp_path)
    with h5py.File(path) as f:
        d = f[f"clips/{WALK12}/rotations"]
        assert d.compression == "gzip"
        chunk = d.id.get_chunk_info(2)  # frames 128:192
    _flip(path, chunk.byte_offset + chunk.size // 2)
    with open_dataset(path) as ds:
        assert ds.window(WALK12, 0, 128).num_frames == 128  # the chunks before it still read
    _fails_in_one_line(path, lambda ds: ds.window(WALK12, 100, 64), rf"clip '{WALK12}', frames 100:164: damaged")


def test_flipped_bytes_in_a_parquet_zstd_page(converted, tmp_path):
    path = _copy(converted, ".parquet", tmp_path)
    md = pq.ParquetFile(path).metadata
    col = next(i for i in range(md.num_columns) if md.schema.column(i).path.startswith("rotations"))
    chunk = md.row_group(4).column(col)  # rows 400:500, frames 57:157 of the second clip
    assert chunk.compression == "ZSTD"
    _flip(path, chunk.data_page_offset + chunk.total_compressed_size // 2)
    with open_dataset(path) as ds:
        assert ds.read_clip(WALK).num_frames == 343
    # zstd frames carry no checksum: without page CRCs this decoded to wrong numbers silently.
    _fails_in_one_line(path, match=rf"clip '{WALK12}', frames 0:523: damaged dataset: .*CRC")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_missing_rotations_column_fails_at_open(converted, tmp_path, suffix):
    path = _copy(converted, suffix, tmp_path)
    if suffix == ".h5":
        with h5py.File(path, "a") as f:
            del f[f"clips/{WALK}/rotations"]
        _fails_in_one_line(path, match=rf"/clips/{WALK}/rotations is missing")
    else:
        _rewrite_parquet(path, lambda t: t.drop_columns(["rotations"]))
        _fails_in_one_line(path, match="the column 'rotations' is missing")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_wrong_shape_rotations_array_fails_at_open(converted, clips, tmp_path, suffix):
    path = _copy(converted, suffix, tmp_path)
    j = clips[0].skeleton.num_joints
    if suffix == ".h5":
        with h5py.File(path, "a") as f:
            g = f[f"clips/{WALK12}"]
            rot = g["rotations"][()]
            del g["rotations"]
            g.create_dataset("rotations", data=rot[:, :, :3])
        _fails_in_one_line(path, match=rf"rotations has shape \(523, {j}, 3\), expected \(523, {j}, 4\)")
    else:
        def three(t):
            flat = t.column("rotations").combine_chunks().flatten().to_numpy().reshape(-1, 4)[:, :3].ravel()
            lists = pa.FixedSizeListArray.from_arrays(pa.array(flat), j * 3)
            return t.set_column(t.schema.get_field_index("rotations"), "rotations", lists)
        _rewrite_parquet(path, three)
        _fails_in_one_line(path, match=rf"the column 'rotations' is fixed_size_list<element: float>\[{j * 3}\], "
                                       rf"expected .*\[{j * 4}\]")


@pytest.mark.parametrize("start, expected", [("-43", "starts at row -43"), ("999", "starts at row 999"),
                                             ("300", "starts at row 300")])
def test_a_bad_start_in_the_parquet_header_fails_at_open(converted, tmp_path, start, expected):
    path = _copy(converted, ".parquet", tmp_path)
    data = path.read_bytes()
    assert data.count(b'"start": 343') == 1  # the second clip starts after the 343 frames of the first
    path.write_bytes(data.replace(b'"start": 343', f'"start": {start}'.encode()))
    _fails_in_one_line(path, match=rf"clip 1 '{WALK12}' {expected}, expected 343")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_nan_stored_in_a_dataset_names_file_clip_frame_and_joint(data_dir, converted, clips, tmp_path, suffix):
    names, _ = bvh_facts(data_dir / "bvh" / f"{WALK12}.bvh")
    path = _copy(converted, suffix, tmp_path)
    if suffix == ".h5":
        with h5py.File(path, "a") as f:
            f[f"clips/{WALK12}/rotations"][200, 5, 1] = np.nan
    else:
        def nan(t):
            flat = t.column("rotations").combine_chunks().flatten().to_numpy().copy()
            flat[((343 + 200) * len(names) + 5) * 4 + 1] = np.nan
            lists = pa.FixedSizeListArray.from_arrays(pa.array(flat), len(names) * 4)
            return t.set_column(t.schema.get_field_index("rotations"), "rotations", lists)
        _rewrite_parquet(path, nan)
    where = rf"clip '{WALK12}', frame 200, joint '{names[5]}': damaged dataset: rotations holds nan"
    _fails_in_one_line(path, match=where)
    _fails_in_one_line(path, lambda ds: ds.window(WALK12, 190, 20), match=where)
    with open_dataset(path) as ds:  # the frames around it still read
        assert ds.window(WALK12, 0, 200).num_frames == 200


# --- 4. reading after close -----------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("read", [lambda ds: ds.read_clip(WALK), lambda ds: ds.window(WALK, 0, 10),
                                  lambda ds: ds.windows(64)[0], lambda ds: next(ds.stream()),
                                  lambda ds: ds.arrays(0)], ids=["read_clip", "window", "windows", "stream",
                                                                 "arrays"])
def test_reading_after_close(converted, suffix, read):
    ds = open_dataset(converted[suffix])
    ds.close()
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(converted[suffix]))}: dataset is closed"):
        read(ds)
    assert ds.info(WALK).num_frames == 343  # the clip table stays readable


# --- 5. a full disk -------------------------------------------------------------------------------------------
_FULL_DISK = """
import os, sys, optiq
clip = optiq.load_clip(sys.argv[2])
out = os.path.join(sys.argv[1], "ds" + sys.argv[3])
try:
    optiq.write_dataset(out, [clip])
    print("written")
except (OSError, optiq.OptiqError) as exc:
    print(type(exc).__name__, exc)
print("left:", sorted(os.listdir(sys.argv[1])))
"""


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_full_disk_raises_and_leaves_no_file(data_dir, tmp_path, suffix):
    # Before: HDF5's own file driver segfaulted (rc 139) when the disk filled, and left a part file.
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount (util-linux) for a small private tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    ns = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = subprocess.run([*ns, "mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()}")
    bvh = data_dir / "bvh" / "cmu_01_14_bvhtodeepmimic.bvh"  # 1.8 MB of motion: far more than 200 KiB
    script = 'mount -t tmpfs -o size=200k tmpfs "$1" && exec "$2" -c "$3" "$1" "$4" "$5"'
    r = subprocess.run([*ns, "sh", "-c", script, "sh", str(disk), sys.executable, _FULL_DISK, str(bvh), suffix],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    out = r.stdout.strip().splitlines()
    assert out[-1] == "left: []", r.stdout
    assert re.search(r"no space left on device", out[0], flags=re.I), r.stdout
    assert "written" not in r.stdout
    assert list(disk.iterdir()) == []


def test_hdf5_write_errors_surface_as_oserror_wherever_they_happen(clips, tmp_path, monkeypatch):
    # The same failure without a tmpfs: the file object HDF5 writes through fails after `budget` bytes, early (in a
    # clip's chunks) or late (in the metadata written when the file is finished). The writer used directly (no
    # write_dataset) removes its file too.
    import errno

    from optiq.datasets import hdf5

    full = tmp_path / "ds.h5"
    with format_for(full).writer(full, clips[0].skeleton) as w:
        w.add(clips[0])
    size = full.stat().st_size
    full.unlink()
    original = hdf5._QuietFile._write_all
    for budget in (20_000, size - 2_000):
        written = [0]

        def write_all(self, view, budget=budget, written=written):
            written[0] += len(view)
            if written[0] > budget:
                raise OSError(errno.ENOSPC, "No space left on device")
            original(self, view)

        monkeypatch.setattr(hdf5._QuietFile, "_write_all", write_all)
        with pytest.raises(OSError, match="No space left on device"):
            with format_for(full).writer(full, clips[0].skeleton) as w:
                w.add(clips[0])
        assert list(tmp_path.iterdir()) == []


# --- 7. reprs -------------------------------------------------------------------------------------------------
def test_short_reprs(converted, clips):
    with open_dataset(converted[".h5"]) as ds:
        n = len(clips[0].labels)
        assert repr(ds.info(WALK)) == f"ClipInfo('{WALK}', frames=343, fps=120, labels={n}, frame_labels=0)"
        assert repr(ds.windows(64, 32)) == f"WindowSet(length=64, stride=32, count={(343 - 64) // 32 + 1 + (523 - 64) // 32 + 1})"
