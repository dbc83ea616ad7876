"""2D keypoints: layouts, the OpenPose JSON folder and COCO-17 JSON loaders, on the shared Pose2Sim demo data.

Expected values are read from the JSON files with plain ``json`` here, independently of the loaders.
"""

from __future__ import annotations

import json

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq.errors import OptiqError
from optiq.keypoints import COCO17_NAMES, LAYOUTS
from optiq.loaders.coco_keypoints import load_coco_keypoints
from optiq.loaders.openpose import load_openpose

FOLDER = "keypoints2d/pose2sim_demo_cam01_openpose_body25b_json"
VIDEO = "video/pose2sim_demo_singleperson_cam01.mp4"
HIPS = [11, 12]  # left_hip, right_hip in BODY_25B (and COCO-17)


@pytest.fixture(scope="module")
def folder(data_dir):
    return data_dir / FOLDER


@pytest.fixture(scope="module")
def raw(folder):
    """Per frame, the file's people as ``[P, 25, 3]`` arrays, read with plain json."""
    files = sorted(folder.glob("*.json"))
    return [np.array([p["pose_keypoints_2d"] for p in json.loads(f.read_text())["people"]]).reshape(-1, 25, 3)
            for f in files]


@pytest.fixture(scope="module")
def subject(folder, data_dir):
    return optiq.load_points(folder, video=str(data_dir / VIDEO))[0]


def test_layouts_have_their_published_sizes_and_valid_edges():
    assert {n: lay.num_points for n, lay in LAYOUTS.items()} == {"body25": 25, "body25b": 25, "coco18": 18,
                                                                  "coco17": 17}
    for lay in LAYOUTS.values():
        assert len(set(lay.names)) == lay.num_points
        edges = np.array(lay.edges)
        assert edges.min() >= 0 and edges.max() < lay.num_points
    # BODY_25B starts with COCO-17 in COCO's order; COCO's skeleton has 19 limbs.
    assert LAYOUTS["body25b"].names[:17] == COCO17_NAMES and len(LAYOUTS["coco17"].edges) == 19


def test_folder_is_one_recording_with_the_files_person_counts(subject, raw):
    assert subject.num_frames == len(raw) == 100
    assert subject.frame_labels["people"].tolist() == [len(p) for p in raw]
    assert sorted(set(subject.frame_labels["people"].tolist())) == [2, 3]
    assert subject.names == LAYOUTS["body25b"].names and subject.labels["layout"] == "body25b"
    assert subject.dim == 2 and subject.unit == "px"


def test_values_are_the_files_numbers(subject, raw):
    det = subject.frame_labels["detection"]
    assert (det >= 0).all()
    for t, people in enumerate(raw):
        ok = subject.valid[t]
        src = people[det[t]]
        if len(people) == 2:  # no fragment to join: every present point is the followed person's
            np.testing.assert_array_equal(subject.positions[t, ok], src[ok, :2])
            np.testing.assert_array_equal(subject.confidence[t, ok], src[ok, 2])
        # every point OpenPose did not see is missing, never filled in
        assert not (ok & (people[:, :, 2] == 0).all(axis=0)).any()
        assert np.isnan(subject.positions[t, ~ok]).all() and (subject.confidence[t, ~ok] == 0).all()


def test_subject_is_followed_through_all_frames(subject, raw):
    hips = subject.positions[:, HIPS].mean(axis=1)
    assert np.isfinite(hips).all()  # present in all 100 frames
    # The subject's hips move at most ~13 px per frame at 60 fps; the other person stands ~400 px away (x < 120).
    assert np.linalg.norm(np.diff(hips, axis=0), axis=1).max() < 30
    for t, people in enumerate(raw):
        others = [p for i, p in enumerate(people) if i != subject.frame_labels["detection"][t]]
        assert all(np.abs(hips[t, 0] - p[HIPS, 0].mean()) > 100 for p in others if (p[HIPS, 2] > 0).all())


def test_a_subject_split_into_two_detections_is_joined(subject, raw):
    # Frame 37: OpenPose gives the subject's upper body and legs as two people (nose in one, ankles in the other).
    people = raw[37]
    assert len(people) == 3
    upper = next(p for p in people if p[0, 2] > 0 and p[15, 2] == 0)
    legs = next(p for p in people if p[15, 2] > 0 and p[0, 2] == 0)
    np.testing.assert_array_equal(subject.positions[37, 0], upper[0, :2])
    np.testing.assert_array_equal(subject.positions[37, 15], legs[15, :2])


def test_points_at_the_image_border_are_missing(subject, raw, folder):
    # Frames where the file puts the followed person's nose at x = 0 with a confidence of 0.6-0.7.
    at_edge = [t for t, p in enumerate(raw) if ((p[:, 0, 0] == 0) & (p[:, 0, 2] > 0.5)).any()]
    assert at_edge == [4, 5, 6, 7, 8, 15]
    assert (subject.confidence[at_edge, 0] == 0).all() and np.isnan(subject.positions[at_edge, 0]).all()
    kept = load_openpose(folder, fps=60, border=0)[0]
    np.testing.assert_array_equal(kept.positions[at_edge, 0, 0], 0.0)
    assert (kept.confidence[at_edge, 0] > 0.6).all()


def test_fps_and_image_size_come_from_the_video_or_the_options(subject, folder, raw):
    # The video is a portrait phone video: 1080 wide, 1920 high, 60 fps (data README); every keypoint lies inside.
    assert subject.fps == 60 and subject.image_size == (1080, 1920)
    xy = np.concatenate([p[p[..., 2] > 0][:, :2] for p in raw])
    assert xy[:, 0].max() < 1080 and xy[:, 1].max() < 1920 and xy[:, 1].max() > 1080
    given = load_openpose(folder, fps=30, image_size="1080x1920")[0]
    assert given.fps == 30 and given.image_size == (1080, 1920)
    with pytest.raises(OptiqError, match="states no frame rate"):
        load_openpose(folder)


def test_rotation_metadata_of_the_video_is_applied(data_dir, tmp_path, caplog):
    import subprocess

    import imageio_ffmpeg
    from optiq.loaders.keypoints2d import video_meta

    # The same stream with a 90 degree display rotation (as a phone writes it): the picture is 1920 wide.
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-display_rotation", "90", "-i",
                    str(data_dir / VIDEO), "-c", "copy", str(rotated)], check=True)
    assert video_meta(rotated) == (60.0, (1920, 1080), 100)
    assert video_meta(data_dir / VIDEO) == (60.0, (1080, 1920), 100)
    assert not [r for r in caplog.records if r.name == "imageio_ffmpeg"]  # the rotation is no warning


def test_layout_option_and_another_person(folder, raw):
    as25 = load_openpose(folder, fps=60, layout="body25")[0]
    assert as25.names == LAYOUTS["body25"].names
    with pytest.raises(OptiqError, match="coco18 has 18 points"):
        load_openpose(folder, fps=60, layout="coco18")
    other = load_openpose(folder, fps=60, person=1)[0]
    # The second person stands at the left edge of the picture (every point at x < 120) in every frame.
    assert other.valid.any(axis=1).all() and np.nanmax(other.positions[..., 0]) < 120
    assert (other.frame_labels["detection"] == 1).mean() > 0.9
    with pytest.raises(OptiqError, match="person=5"):
        load_openpose(folder, fps=60, person=5)


@pytest.mark.parametrize("target", ["body25", "coco18"])
def test_other_openpose_layouts_are_recognised(folder, raw, tmp_path, target):
    # The shared BODY_25B people rewritten in another layout's order (neck: BODY_25B's upper_neck; a point
    # BODY_25B lacks, mid_hip, written as OpenPose writes a missing point: 0, 0, 0).
    src = {n: i for i, n in enumerate(LAYOUTS["body25b"].names)}
    order = [src.get("upper_neck" if n == "neck" else n, -1) for n in LAYOUTS[target].names]
    dest = tmp_path / target
    dest.mkdir()
    for t, people in enumerate(raw):
        moved = np.where(np.array(order)[None, :, None] >= 0, people[:, order], 0.0)
        (dest / f"run_{t:012d}_keypoints.json").write_text(json.dumps(
            {"version": 1.3, "people": [{"pose_keypoints_2d": p.ravel().tolist()} for p in moved]}))
    pts = load_openpose(dest, fps=60)[0]
    assert pts.labels["layout"] == target and pts.names == LAYOUTS[target].names
    original = load_openpose(folder, fps=60)[0]
    for name in ("nose", "left_wrist", "right_ankle"):
        np.testing.assert_array_equal(pts.positions[:, pts.names.index(name)],
                                      original.positions[:, original.names.index(name)])


def test_convert_the_folder_and_info(folder, data_dir, tmp_path, subject):
    out = tmp_path / "kp.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(folder), "--out", str(out),
                                         "--option", f"video={data_dir / VIDEO}"])
    assert r.exit_code == 0, r.output
    assert "1 clips, 100 frames from 1 files" in r.output
    r = CliRunner().invoke(build_cli(), ["data", "info", str(out), "--json"])
    s = json.loads(r.output)
    assert s["kind"] == "points" and s["num_frames"] == 100 and s["fps"] == [60]
    assert s["points"]["dim"] == 2 and s["points"]["names"] == list(LAYOUTS["body25b"].names)
    assert s["clips"][0]["image_size"] == [1080, 1920]
    with optiq.open_dataset(out) as ds:
        back = ds.read_points(0)
    # float32 on disk
    np.testing.assert_allclose(back.positions, subject.positions, atol=1e-4)
    np.testing.assert_allclose(back.confidence, subject.confidence, atol=1e-6)
    r = CliRunner().invoke(build_cli(), ["data", "info", str(folder), "--option", "fps=60"])
    assert r.exit_code == 0 and "points: 25 (2D, px)" in r.output and "image size" not in r.output
    r = CliRunner().invoke(build_cli(), ["data", "info", str(out)])
    assert "image size: 1080x1920 px (width x height)" in r.output


def _linked(folder, dest, skip=()):
    """A folder of links to the frame files of ``folder`` (except ``skip``), so that a test can break one."""
    dest.mkdir()
    for f in sorted(folder.glob("*.json")):
        if f.name not in skip:
            (dest / f.name).symlink_to(f)
    return dest


def _gap(folder, tmp_path):
    return _linked(folder, tmp_path / "gap", skip={"cam01.0042.json"}), "frame numbers jump from 41"


def _nobody(folder, tmp_path):
    dest = tmp_path / "nobody"
    dest.mkdir()
    for i in range(5):
        (dest / f"run_{i:012d}_keypoints.json").write_text('{"version": 1.3, "people": []}')
    return dest, "no person in any of the 5 frames"


def _malformed(folder, tmp_path):
    dest = _linked(folder, tmp_path / "bad", skip={"cam01.0010.json"})
    (dest / "cam01.0010.json").write_text((folder / "cam01.0010.json").read_text()[:300])
    return dest, "cam01.0010.json: line 1 column 301: not JSON"


@pytest.mark.parametrize("make", [_gap, _nobody, _malformed])
def test_bad_folders_are_one_line_exit_2_and_nothing_written(folder, tmp_path, make):
    bad, message = make(folder, tmp_path)
    out = tmp_path / "kp.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(bad), "--out", str(out),
                                         "--option", "fps=60"])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("optiq: error: ") and message in r.output
    assert not out.exists() and not list(tmp_path.glob("*.parquet*"))


def test_a_file_ffmpeg_cannot_read_as_the_video_is_one_line(folder, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    out = tmp_path / "kp.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(folder), "--out", str(out),
                                         "--option", f"video={fake}"])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert f"ffmpeg cannot read {fake} as a video" in r.output and not out.exists()


def _coco_results(raw):
    """The shared OpenPose data as a COCO results file: BODY_25B's first 17 points are COCO-17."""
    return [{"image_id": t, "category_id": 1, "keypoints": p[:17].ravel().tolist(), "score": 1.0}
            for t, people in enumerate(raw) for p in people]


def test_coco_results_file_reads_the_same_subject(tmp_path, raw, folder):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_coco_results(raw)))
    pts = optiq.load_points(path, fps=60, image_size="1080x1920")[0]
    records = json.loads(path.read_text())
    assert pts.names == COCO17_NAMES and pts.num_frames == 100 and pts.labels["format"] == "coco"
    assert pts.frame_labels["people"].tolist() == [sum(r["image_id"] == t for r in records) for t in range(100)]
    hips = pts.positions[:, HIPS].mean(axis=1)
    assert np.isfinite(hips).all() and np.linalg.norm(np.diff(hips, axis=0), axis=1).max() < 30
    # frame 0: the values of the file's first record (the subject)
    first = np.array(records[0]["keypoints"]).reshape(17, 3)
    ok = pts.valid[0]
    np.testing.assert_array_equal(pts.positions[0, ok], first[ok, :2])
    np.testing.assert_array_equal(pts.confidence[0, ok], first[ok, 2])


def test_coco_annotations_file_flags_and_image_size(tmp_path, raw):
    anns = [{**r, "id": i, "keypoints": [v if j % 3 < 2 else 2 * (v > 0) for j, v in enumerate(r["keypoints"])]}
            for i, r in enumerate(_coco_results(raw))]
    images = [{"id": t, "width": 1080, "height": 1920, "file_name": f"{t:04d}.png"} for t in range(100)]
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1}]}))
    pts = load_coco_keypoints(path, fps=60)[0]
    assert pts.image_size == (1080, 1920) and set(np.unique(pts.confidence)) == {0.0, 1.0}
    flags = np.array(anns[0]["keypoints"]).reshape(17, 3)[:, 2]
    assert pts.valid[0].tolist() == (flags > 0).tolist()  # frame 0's first record is the subject


def test_coco_gap_and_malformed_are_one_line_errors(tmp_path, raw):
    records = [r for r in _coco_results(raw) if r["image_id"] != 50]
    gap = tmp_path / "gap.json"
    gap.write_text(json.dumps(records))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**records[0], "keypoints": records[0]["keypoints"][:50]}]))
    for path, message in [(gap, "image_id jumps from 49 to 51"), (bad, "[0].keypoints: expected 51 numbers")]:
        out = tmp_path / "kp.parquet"
        r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(path), "--out", str(out),
                                             "--option", "fps=60"])
        assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output
        assert not out.exists()
