"""The optiq JSON motion format: a real BVH clip round-trips bit for bit, the documented example loads with the
positions the doc states, other tools' units are converted, writes are atomic, and broken files are named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import optiq
import pytest
from optiq import OptiqError, ParseError
from optiq.loaders.bvh import load_bvh
from optiq.loaders.json_motion import document_to_clip, load_json, sniff_json, write_json

DOC = Path(__file__).resolve().parents[2] / "docs" / "json-motion.md"


@pytest.fixture(scope="module")
def bvh_clip(data_dir):
    clip = load_bvh(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")[0]
    t = clip.num_frames
    return clip.with_labels(
        {"movement": "walk"},
        {"phase": np.linspace(0.0, 1.0, t) ** 2, "step": np.arange(t) // 60, "contact": np.arange(t) % 3 == 0,
         "tag": np.array(["swing", "stance"])[np.arange(t) % 2]},
    )


def test_round_trip_of_a_real_bvh_clip(bvh_clip, tmp_path):
    path = tmp_path / "walk.json"
    optiq.save_clip(bvh_clip, path)
    back = optiq.load_clip(path)
    assert back.num_frames == bvh_clip.num_frames == 344 and back.fps == 120.0
    assert back.name == bvh_clip.name and back.labels == bvh_clip.labels
    assert back.skeleton.names == bvh_clip.skeleton.names
    np.testing.assert_array_equal(back.skeleton.parents, bvh_clip.skeleton.parents)
    np.testing.assert_allclose(back.skeleton.offsets, bvh_clip.skeleton.offsets, rtol=0, atol=1e-9)
    assert back.skeleton.end_sites.keys() == bvh_clip.skeleton.end_sites.keys()
    for k, v in bvh_clip.skeleton.end_sites.items():
        np.testing.assert_allclose(back.skeleton.end_sites[k], v, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.rotations, bvh_clip.rotations, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.root_translation, bvh_clip.root_translation, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.world_positions(), bvh_clip.world_positions(), rtol=0, atol=1e-9)
    for key, values in bvh_clip.frame_labels.items():
        assert back.frame_labels[key].dtype.kind == values.dtype.kind
        np.testing.assert_array_equal(back.frame_labels[key], values)
    # What another tool sees: plain JSON with the documented keys.
    doc = json.loads(path.read_text())
    assert doc["format"] == "optiq-motion" and doc["version"] == 1
    assert np.array(doc["frames"]["rotations"]).shape == (344, 31, 4)
    assert sniff_json(path, path.read_bytes()[:4096])


def test_local_translations_round_trip(bvh_clip, tmp_path):
    moving = bvh_clip.replace(local_translations=bvh_clip.local_offsets() * 1.01, frame_labels={})
    write_json(moving, tmp_path / "m.json")
    back = load_json(tmp_path / "m.json")[0]
    np.testing.assert_array_equal(back.local_translations, moving.local_translations)


def test_documented_example_loads_as_the_doc_says():
    block = re.search(r"```json\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    doc = json.loads(block)
    assert doc["format"] == "optiq-motion"
    clip = document_to_clip(doc, DOC)
    assert clip.num_frames == 2 and clip.fps == 30.0 and clip.labels == {"movement": "wave"}
    pos = clip.world_positions()
    np.testing.assert_allclose(pos[1, 1], [0.3, 0.0, 1.4], atol=1e-12)
    np.testing.assert_allclose(clip.end_site_positions()[1][1], [0.3, 0.25, 1.4], atol=1e-12)


def test_other_units_are_converted(bvh_clip, tmp_path):
    """A tool that writes Y up in centimetres: the file's (x, y, z) is optiq's (z, x, y) / 100."""
    clip = bvh_clip.replace(frame_labels={})
    doc = json.loads(_written(clip, tmp_path))
    yup = lambda a: (np.asarray(a)[..., [1, 2, 0]] * 100.0).tolist()  # noqa: E731
    doc["units"] = {"length": "cm", "up": "y"}
    doc["skeleton"]["offsets"] = yup(doc["skeleton"]["offsets"])
    doc["skeleton"]["end_sites"] = {k: yup(v) for k, v in doc["skeleton"]["end_sites"].items()}
    doc["frames"]["root_translation"] = yup(doc["frames"]["root_translation"])
    rot = np.array(doc["frames"]["rotations"])
    rot[..., 1:] = rot[..., 1:][..., [1, 2, 0]]
    doc["frames"]["rotations"] = rot.tolist()
    path = tmp_path / "yup.json"
    path.write_text(json.dumps(doc))
    back = load_json(path)[0]
    np.testing.assert_allclose(back.world_positions(), clip.world_positions(), atol=1e-9)


def _written(clip, tmp_path) -> str:
    path = tmp_path / "w.json"
    write_json(clip, path)
    return path.read_text()


def test_writes_are_atomic(bvh_clip, tmp_path):
    with pytest.raises(OptiqError, match="does not exist"):
        write_json(bvh_clip, tmp_path / "missing" / "x.json")
    assert not (tmp_path / "missing").exists()
    nan = bvh_clip.with_labels(frame_labels={"phase": np.full(bvh_clip.num_frames, np.nan)})
    with pytest.raises(OptiqError, match="frame label 'phase' holds NaN"):
        write_json(nan, tmp_path / "nan.json")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture()
def small(bvh_clip, tmp_path):
    clip = bvh_clip[:20].replace(frame_labels={})
    return json.loads(_written(clip, tmp_path)), _written(clip, tmp_path)


def _load(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    return load_json(path)


def test_invalid_json_names_line_and_column(small, tmp_path):
    _, text = small
    pretty = json.dumps(json.loads(text), indent=1)
    cut = pretty[: len(pretty) // 2]
    try:
        json.loads(cut)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
    assert not where.startswith("line 1,")
    with pytest.raises(ParseError, match=rf"bad\.json: {where}: invalid JSON"):
        _load(tmp_path, cut)
    with pytest.raises(ParseError, match=r"bad\.json: file is empty"):
        _load(tmp_path, "")
    with pytest.raises(ParseError, match=r'bad\.json: format: expected an object with "format": "optiq-motion"'):
        _load(tmp_path, "[1, 2]")


def test_missing_keys_wrong_lengths_and_nan(small, tmp_path):
    doc, _ = small

    def load_edited(edit):
        d = json.loads(json.dumps(doc))
        edit(d)
        return _load(tmp_path, json.dumps(d))

    with pytest.raises(ParseError, match=r"bad\.json: fps: missing key 'fps'"):
        load_edited(lambda d: d.pop("fps"))
    with pytest.raises(ParseError, match=r"bad\.json: skeleton\.parents: missing key 'parents'"):
        load_edited(lambda d: d["skeleton"].pop("parents"))
    with pytest.raises(ParseError, match=r"bad\.json: frames\.rotations: missing key 'rotations'"):
        load_edited(lambda d: d["frames"].pop("rotations"))
    with pytest.raises(ParseError, match=r"bad\.json: frames\.rotations\[4\]: expected a \[31x4\] array"):
        load_edited(lambda d: d["frames"]["rotations"][4].pop())
    with pytest.raises(ParseError, match=r"bad\.json: frames\.root_translation: expected a \[20x3\] array"):
        load_edited(lambda d: d["frames"]["root_translation"].pop())
    with pytest.raises(ParseError, match=r"bad\.json: skeleton\.offsets: expected a \[31x3\] array"):
        load_edited(lambda d: d["skeleton"]["offsets"].pop())
    with pytest.raises(ParseError, match=r"bad\.json: frames\.root_translation\[2\]: holds NaN or inf"):
        load_edited(lambda d: d["frames"]["root_translation"][2].__setitem__(1, float("nan")))
    with pytest.raises(ParseError, match=r"bad\.json: version: unsupported version 2"):
        load_edited(lambda d: d.__setitem__("version", 2))
    with pytest.raises(ParseError, match=r"bad\.json: frame_labels\.phase: expected 20 values"):
        load_edited(lambda d: d.__setitem__("frame_labels", {"phase": [0.0] * 19}))
    with pytest.raises(ParseError, match=r"bad\.json: skeleton\.parents: parents must be integers"):
        load_edited(lambda d: d["skeleton"]["parents"].__setitem__(3, 1.5))
    with pytest.raises(ParseError, match=r"bad\.json: skeleton: parents must list parents before children"):
        load_edited(lambda d: d["skeleton"]["parents"].__setitem__(3, 7))


@pytest.mark.parametrize("edit, where, message", [
    (lambda d: d.__setitem__("fps", True), "fps", "fps must be a positive number, got True"),
    (lambda d: d.__setitem__("version", True), "version", "unsupported version True"),
    (lambda d: d["labels"].__setitem__("take", 3), "labels.take", "expected a string, got a number"),
    (lambda d: d["labels"].__setitem__("style", ["happy", "old"]), "labels.style", "expected a string, got a list"),
    (lambda d: d.__setitem__("name", 7), "name", "expected a string, got a number"),
    (lambda d: d.__setitem__("frame_labels", {"xy": [[0, 1]] * 20}), "frame_labels.xy", "expected 20 values"),
    (lambda d: d.__setitem__("frame_labels", {"f": [{"a": 1}] * 20}), "frame_labels.f", "expected 20 values"),
])
def test_booleans_are_not_numbers_and_labels_are_strings(small, tmp_path, edit, where, message):
    # Before: "fps": true loaded as a 1 fps clip, and label 3 or ["happy", "old"] was stored as the text "3"/"['happy', ...]".
    doc, _ = small
    d = json.loads(json.dumps(doc))
    edit(d)
    with pytest.raises(ParseError, match=rf"bad\.json: {re.escape(where)}: {re.escape(message)}"):
        _load(tmp_path, json.dumps(d))


def test_deeply_nested_json_is_one_error(small, tmp_path):
    doc, _ = small
    deep = json.dumps(doc)[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(ParseError, match=r"bad\.json: JSON nested too deeply"):
        _load(tmp_path, deep)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.__setitem__("name", "walk/left"), "clip name 'walk/left' contains '/'"),
    (lambda d: d["labels"].__setitem__(" take", "1"), "clip label key ' take'"),
    (lambda d: d.__setitem__("frame_labels", {"": [0] * 20}), "frame label name is empty"),
])
def test_names_a_dataset_cannot_hold_are_refused_naming_the_json_file(small, tmp_path, edit, message):
    """Before: such a file loaded, and the dataset writer refused it later, naming the dataset, not this file."""
    doc, _ = small
    d = json.loads(json.dumps(doc))
    edit(d)
    with pytest.raises(ParseError, match=rf"bad\.json: {re.escape(message)}"):
        _load(tmp_path, json.dumps(d))


def test_a_json_no_loader_recognises_gets_the_json_loaders_error(tmp_path):
    """Two loaders claim .json (optiq motion, COCO keypoints); content neither recognises goes to the JSON motion
    loader (registered fallback=True), whose error says what the file lacks, not 'choose a loader'."""
    from optiq.io import loader_for

    path = tmp_path / "other.json"
    path.write_text('{"foo": 1}')
    assert loader_for(path).name == "json"
    with pytest.raises(OptiqError, match='expected an object with "format": "optiq-motion"'):
        optiq.load_clip(path)
