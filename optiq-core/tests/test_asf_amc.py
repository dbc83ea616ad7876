"""The Acclaim ASF/AMC loader on the real CMU 02_01 walk: counts as the files state them, the skeleton as the ASF
writes it, constant bone lengths, options, and every kind of bad input."""

from __future__ import annotations

import re
import shutil

import numpy as np
import optiq
import pytest
from optiq import ParseError
from optiq.loaders.asf_amc import load_amc

CMU_UNIT = 0.0254 / 0.45  # metres per CMU ASF unit (`length 0.45`: 1 unit = 1/0.45 inch)


@pytest.fixture(scope="module")
def files(data_dir):
    return data_dir / "asf_amc" / "cmu_02.asf", data_dir / "asf_amc" / "cmu_02_01_walk.amc"


@pytest.fixture(scope="module")
def clip(files):
    return optiq.load_clip(files[1])


def _zup(v):
    """ASF file axes (Y up) to optiq's (Z up): (x, y, z) -> (z, x, y), written out here rather than imported."""
    v = np.asarray(v, dtype=float)
    return np.array([v[2], v[0], v[1]])


def test_counts_as_the_files_state(files, clip):
    asf_text, amc_text = files[0].read_text(), files[1].read_text()
    bones = re.findall(r"^\s*name\s+(\S+)", asf_text, flags=re.M)
    frame_numbers = [int(x) for x in re.findall(r"^\s*(\d+)\s*$", amc_text, flags=re.M)]
    assert len(bones) == 30
    assert clip.num_joints == 31 == len(bones) + 1
    assert set(clip.skeleton.names) == {"root", *bones}
    assert frame_numbers == list(range(1, 344))
    assert clip.num_frames == 343 == len(frame_numbers)
    assert clip.fps == 120.0
    assert clip.labels["skeleton"] == "cmu_02.asf"


def test_skeleton_offsets_are_parent_bone_vectors(clip):
    s = clip.skeleton
    # Values copied from cmu_02.asf: a joint sits at the end of its parent bone.
    lhip = 2.52691 * np.array([0.655637, -0.713449, 0.247245])
    lfemur = 7.59371 * np.array([0.34202, -0.939693, 0.0])
    np.testing.assert_allclose(s.offsets[s.index("lhipjoint")], 0.0, atol=1e-12)
    np.testing.assert_allclose(s.offsets[s.index("lfemur")], _zup(lhip) * CMU_UNIT, atol=1e-6)
    np.testing.assert_allclose(s.offsets[s.index("ltibia")], _zup(lfemur) * CMU_UNIT, atol=1e-6)
    assert s.parents[s.index("lclavicle")] == s.index("thorax")
    assert s.parents[s.index("lthumb")] == s.index("lwrist")
    ltoes = s.index("ltoes")
    np.testing.assert_allclose(s.end_sites[ltoes], _zup([0, 0, 1.11249]) * CMU_UNIT, atol=1e-6)
    leaves = {s.names[j] for j in s.end_sites}
    assert leaves == {"ltoes", "rtoes", "head", "lfingers", "lthumb", "rfingers", "rthumb"}


def test_frame_one_root_as_written(clip):
    # Frame 1 root line: "root 10.4194 16.7048 -30.1003 ..." (Y up, ASF units).
    np.testing.assert_allclose(clip.root_translation[0], _zup([10.4194, 16.7048, -30.1003]) * CMU_UNIT, atol=1e-9)
    # The lowerback rises from the root: Z is up after conversion.
    pos = clip.world_positions()
    assert np.all(pos[:, clip.skeleton.index("head"), 2] > pos[:, 0, 2] + 0.3)


def test_bone_lengths_constant_over_time(clip):
    pos, rot = clip.forward_kinematics()
    s = clip.skeleton
    for j in range(1, s.num_joints):
        length = np.linalg.norm(pos[:, j] - pos[:, s.parents[j]], axis=-1)
        np.testing.assert_allclose(length, np.linalg.norm(s.offsets[j]), atol=1e-9)
    for j, off in s.end_sites.items():
        tip = pos[:, j] + optiq.quat.rotate(rot[:, j], off)
        np.testing.assert_allclose(np.linalg.norm(tip - pos[:, j], axis=-1), np.linalg.norm(off), atol=1e-9)
    # The motion is not the rest pose: the knee bends by tens of degrees during the walk.
    knee = np.degrees(optiq.quat.angle_between(clip.rotations[:, s.index("ltibia")], optiq.quat.identity()))
    assert knee.max() > 40


def test_options_fps_unit_and_explicit_asf(files, tmp_path):
    asf, amc = files
    moved = tmp_path / "take.amc"
    shutil.copyfile(amc, moved)
    clip = load_amc(moved, asf=asf, fps=60, unit="m")[0]
    ref = load_amc(amc)[0]
    assert clip.fps == 60
    np.testing.assert_allclose(clip.root_translation * CMU_UNIT, ref.root_translation, atol=1e-12)
    np.testing.assert_allclose(clip.rotations, ref.rotations, atol=1e-12)


def test_radians_header(files, tmp_path):
    asf, amc = files
    out = []
    for line in amc.read_text().splitlines():
        tok = line.split()
        if line.startswith(":DEGREES"):
            out.append(":RADIANS")
        elif len(tok) > 1 and not line.startswith("#"):
            vals = np.radians(np.array(tok[1:], dtype=float))
            if tok[0] == "root":
                vals[:3] = np.array(tok[1:4], dtype=float)  # root translation stays in length units
            out.append(" ".join([tok[0], *map(repr, vals.tolist())]))
        else:
            out.append(line)
    rad = tmp_path / "rad.amc"
    rad.write_text("\n".join(out) + "\n")
    a, b = load_amc(amc)[0], load_amc(rad, asf=asf)[0]
    np.testing.assert_allclose(a.world_positions(), b.world_positions(), atol=1e-9)


def test_asf_found_beside_the_amc(files, tmp_path):
    asf, amc = files
    (tmp_path / "one").mkdir()
    shutil.copyfile(amc, tmp_path / "one" / "walk.amc")
    shutil.copyfile(asf, tmp_path / "one" / "subject.asf")  # the only .asf: taken whatever its name
    assert load_amc(tmp_path / "one" / "walk.amc")[0].num_joints == 31
    shutil.copyfile(asf, tmp_path / "one" / "other.asf")
    with pytest.raises(ParseError, match=r"walk\.amc: cannot tell which skeleton .*other\.asf, subject\.asf.*asf="):
        load_amc(tmp_path / "one" / "walk.amc")
    shutil.copyfile(asf, tmp_path / "one" / "wal.asf")  # a stem that prefixes the AMC's wins
    assert load_amc(tmp_path / "one" / "walk.amc")[0].labels["skeleton"] == "wal.asf"


def test_missing_asf(files, tmp_path):
    amc = tmp_path / "walk.amc"
    shutil.copyfile(files[1], amc)
    with pytest.raises(ParseError, match=r"walk\.amc: cannot tell which skeleton .*none.*pass asf=PATH"):
        load_amc(amc)
    with pytest.raises(ParseError, match=r"walk\.amc: skeleton file .*nope\.asf does not exist"):
        load_amc(amc, asf=tmp_path / "nope.asf")


def _broken(files, tmp_path, edit):
    """A copy of the real AMC with ``edit(lines) -> lines`` applied, beside a copy of the real ASF."""
    shutil.copyfile(files[0], tmp_path / "cmu_02.asf")
    lines = files[1].read_text().splitlines()
    out = tmp_path / "cmu_02_bad.amc"
    out.write_text("\n".join(edit(lines)) + "\n")
    return out, lines


def _line_of(lines, prefix, occurrence=0):
    hits = [i for i, ln in enumerate(lines) if ln.startswith(prefix)]
    return hits[occurrence]


def test_truncated_mid_line(files, tmp_path):
    # Cut the file inside frame 100's rfemur line: that line has fewer values than its dofs.
    def cut(lines):
        i = _line_of(lines, "rfemur ", 99)
        return lines[:i] + [" ".join(lines[i].split()[:2])]

    path, lines = _broken(files, tmp_path, cut)
    lineno = _line_of(lines, "rfemur ", 99) + 1
    with pytest.raises(ParseError, match=rf"cmu_02_bad\.amc: line {lineno}, frame 100: bone 'rfemur' has 1 values, "
                                         r"expected 3"):
        load_amc(path)


def test_truncated_between_lines(files, tmp_path):
    def cut(lines):
        return lines[:_line_of(lines, "rfemur ", 342)]

    path, lines = _broken(files, tmp_path, cut)
    lineno = lines.index("343") + 1
    with pytest.raises(ParseError, match=rf"line {lineno}, frame 343: frame 343 lacks bone\(s\) lfemur, lfoot, "
                                         r"ltibia, ltoes, rfemur, rfoot, rtibia, rtoes \(the file may be truncated\)"):
        load_amc(path)


def test_unknown_bone(files, tmp_path):
    def rename(lines):
        i = _line_of(lines, "ltibia ", 5)
        return lines[:i] + ["lshin" + lines[i][len("ltibia"):]] + lines[i + 1:]

    path, lines = _broken(files, tmp_path, rename)
    lineno = _line_of(lines, "ltibia ", 5) + 1
    with pytest.raises(ParseError, match=rf"line {lineno}, frame 6: unknown bone 'lshin'; the skeleton has root, "):
        load_amc(path)


def test_wrong_value_count(files, tmp_path):
    def extra(lines):
        i = _line_of(lines, "lowerback ", 9)
        return lines[:i] + [lines[i] + " 1.0"] + lines[i + 1:]

    path, lines = _broken(files, tmp_path, extra)
    lineno = _line_of(lines, "lowerback ", 9) + 1
    with pytest.raises(ParseError, match=rf"line {lineno}, frame 10: bone 'lowerback' has 4 values, expected 3"):
        load_amc(path)


@pytest.mark.parametrize("bad", ["nan", "inf", "1.2.3"])
def test_not_a_finite_number(files, tmp_path, bad):
    def corrupt(lines):
        i = _line_of(lines, "head ", 200)
        tok = lines[i].split()
        return lines[:i] + [" ".join([tok[0], tok[1], bad, tok[3]])] + lines[i + 1:]

    path, lines = _broken(files, tmp_path, corrupt)
    lineno = _line_of(lines, "head ", 200) + 1
    with pytest.raises(ParseError, match=rf"cmu_02_bad\.amc: line {lineno}: bone 'head': '{re.escape(bad)}' is not "
                                         r"a finite number"):
        load_amc(path)


def test_frame_number_gap(files, tmp_path):
    def skip(lines):
        return [("51" if ln == "50" else ln) for ln in lines]

    path, lines = _broken(files, tmp_path, skip)
    with pytest.raises(ParseError, match=rf"line {lines.index('50') + 1}: frame number 51, expected 50"):
        load_amc(path)


def test_empty_and_frameless_files(files, tmp_path):
    path, _ = _broken(files, tmp_path, lambda lines: [])
    path.write_text("")
    with pytest.raises(ParseError, match=r"cmu_02_bad\.amc: file is empty"):
        load_amc(path)
    path.write_text(":FULLY-SPECIFIED\n:DEGREES\n")
    with pytest.raises(ParseError, match=r"cmu_02_bad\.amc: line 2: no frames"):
        load_amc(path)


def test_bad_asf(files, tmp_path):
    asf_lines = files[0].read_text().splitlines()
    amc = tmp_path / "cmu_02_01.amc"
    shutil.copyfile(files[1], amc)
    asf = tmp_path / "cmu_02.asf"

    i = next(k for k, ln in enumerate(asf_lines) if ln.strip().startswith("length 7.59371"))
    asf.write_text("\n".join(asf_lines[:i] + ["     length seven"] + asf_lines[i + 1:]))
    with pytest.raises(ParseError, match=rf"cmu_02\.asf: line {i + 1}: length needs 1 finite number"):
        load_amc(amc)

    h = next(k for k, ln in enumerate(asf_lines) if ln.strip() == "lfemur ltibia")
    asf.write_text("\n".join(asf_lines[:h] + ["    lfemur lshin"] + asf_lines[h + 1:]))
    with pytest.raises(ParseError, match=rf"cmu_02\.asf: line {h + 1}: :hierarchy names bone 'lshin'"):
        load_amc(amc)

    d = next(k for k, ln in enumerate(asf_lines) if ln.strip() == "dof rx ry rz")
    asf.write_text("\n".join(asf_lines[:d] + ["    dof rx ry rq"] + asf_lines[d + 1:]))
    with pytest.raises(ParseError, match=rf"line {d + 1}: unknown degree of freedom 'rq'"):
        load_amc(amc)

    asf.write_text("")
    with pytest.raises(ParseError, match=r"cmu_02\.asf: skeleton file is empty"):
        load_amc(amc)


def test_registered_for_amc_suffix(files):
    from optiq.io import loader_for

    assert loader_for(files[1]).name == "asf_amc"


def test_bvh_export_reloads_to_the_same_motion(clip, tmp_path):
    # The label names the unit as the BVH writer reads it (CMU's `length 0.45` is optiq's "cmu" unit).
    assert clip.labels["length_unit"] == "cmu"
    # Through the "module:attr" of the writer function, as a registered name would be used.
    out = optiq.save_clip(clip, tmp_path / "walk.bvh", writer="optiq.loaders.bvh_write:write_bvh")
    back = optiq.load_clip(out, unit="cmu")
    assert back.skeleton.names == clip.skeleton.names and back.num_frames == clip.num_frames
    np.testing.assert_allclose(back.world_positions(), clip.world_positions(), rtol=0, atol=1e-5)


def test_vectorised_amc_reading_equals_the_line_reading(data_dir):
    """The real file takes the vectorised path, and it gives exactly what the line-by-line reader gives."""
    from optiq.loaders.asf_amc import _parse_amc_lines, _parse_amc_regular, load_asf

    amc = data_dir / "asf_amc" / "cmu_02_01_walk.amc"
    skel = load_asf(data_dir / "asf_amc" / "cmu_02.asf")
    dof_counts = {"root": len(skel.root_order)} | {b.name: len(b.dofs) for b in skel.bones}
    text = amc.read_text()
    fast = _parse_amc_regular(text, dof_counts)
    slow = _parse_amc_lines(text, dof_counts, amc)
    assert fast is not None
    assert (fast.n_frames, fast.degrees) == (slow.n_frames, slow.degrees) == (343, True)
    assert fast.values.keys() == slow.values.keys()
    for bone, values in slow.values.items():
        np.testing.assert_array_equal(fast.values[bone], values)
    # A file that is not regular (a bone missing from the last frame) falls back to the line reader.
    assert _parse_amc_regular(text.rstrip().rsplit("\n", 1)[0], dof_counts) is None
