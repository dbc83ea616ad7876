"""Skeleton: rest pose, left/right pairs and validation, on real BVH skeletons."""

from __future__ import annotations

import numpy as np
import pytest
from optiq import Skeleton, SkeletonMismatchError
from optiq.axes import LENGTH_UNITS, Y_UP_TO_Z_UP
from optiq.loaders.bvh import load_bvh


def rest_from_text(path) -> dict[str, np.ndarray]:
    """Rest positions (file units and axes) summed from the OFFSET lines with a brace stack; no optiq code."""
    out, stack, pending, kind = {}, [], None, None
    for line in path.read_text().splitlines():
        t = line.split()
        if not t:
            continue
        if t[0] in ("ROOT", "JOINT"):
            pending, kind = t[1], "joint"
        elif t[:2] == ["End", "Site"]:
            kind = "end"
        elif t[0] == "{":
            stack.append(pending if kind == "joint" else None)
            kind = None
        elif t[0] == "}":
            stack.pop()
        elif t[0] == "OFFSET" and stack[-1] is not None and stack[-1] not in out:
            parents = [s for s in stack[:-1] if s is not None]
            base = out[parents[-1]] if parents else np.zeros(3)
            out[stack[-1]] = base + np.array([float(x) for x in t[1:4]])
        elif t[0] == "MOTION":
            break
    return out


@pytest.mark.parametrize("name,unit", [("cmu_02_01_bvhtodeepmimic.bvh", "cmu"), ("sfu_0005_Walking001.bvh", "inch"),
                                       ("pymo_AV_8Walk_Meredith_HVHA_Rep1.bvh", "inch")])
def test_rest_positions_match_the_file_offsets(data_dir, name, unit):
    path = data_dir / "bvh" / name
    sk = load_bvh(path, unit=unit)[0].skeleton
    expected = rest_from_text(path)
    assert list(expected) == list(sk.names)
    ref = np.array(list(expected.values())) @ Y_UP_TO_Z_UP.T * LENGTH_UNITS[unit]
    np.testing.assert_allclose(sk.rest_positions(), ref, atol=1e-12)


def test_cmu_mirror_pairs(data_dir):
    sk = load_bvh(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")[0].skeleton
    perm = sk.mirror_pairs()
    swapped = {sk.names[i]: sk.names[p] for i, p in enumerate(perm) if i != p}
    # 12 pairs: hip joint, up leg, leg, foot, toe; shoulder, arm, forearm, hand, finger base, index, thumb.
    assert len(swapped) == 2 * 12
    for left, right in [("LHipJoint", "RHipJoint"), ("LeftUpLeg", "RightUpLeg"), ("LeftToeBase", "RightToeBase"),
                        ("LThumb", "RThumb"), ("LeftHandIndex1", "RightHandIndex1")]:
        assert swapped[left] == right and swapped[right] == left
    for centre in ("Hips", "LowerBack", "Spine", "Neck", "Head"):
        assert perm[sk.index(centre)] == sk.index(centre)
    assert np.array_equal(perm[perm], np.arange(sk.num_joints))


def test_max_friendly_names_pair_too(data_dir):
    sk = load_bvh(data_dir / "bvh" / "cmu_131_01_start_walk_stop_maxfriendly.bvh")[0].skeleton
    perm = sk.mirror_pairs()
    assert sk.names[perm[sk.index("LeftHip")]] == "RightHip"
    assert sk.names[perm[sk.index("LeftKnee")]] == "RightKnee"


def test_explicit_pairs_and_unknown_joint(data_dir):
    sk = load_bvh(data_dir / "bvh" / "sfu_0005_Walking001.bvh")[0].skeleton
    perm = sk.mirror_pairs([("LeftFoot", "RightFoot")])
    assert perm[sk.index("LeftFoot")] == sk.index("RightFoot")
    assert np.count_nonzero(perm != np.arange(sk.num_joints)) == 2
    with pytest.raises(KeyError, match="no joint 'LeftPaw'; joints: Hips"):
        sk.mirror_pairs([("LeftPaw", "RightFoot")])


def test_children_and_index(data_dir):
    sk = load_bvh(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")[0].skeleton
    hips = sk.index("Hips")
    assert [sk.names[c] for c in sk.children(hips)] == ["LHipJoint", "RHipJoint", "LowerBack"]
    assert sk.children(sk.index("LeftToeBase")) == []


def test_transformed_rotates_and_scales_offsets_and_end_sites(data_dir):
    sk = load_bvh(data_dir / "bvh" / "sfu_0005_Walking001.bvh")[0].skeleton
    m = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = sk.transformed(m, 2.0)
    np.testing.assert_allclose(out.offsets, 2.0 * sk.offsets @ m.T)
    np.testing.assert_allclose(out.rest_positions(), 2.0 * sk.rest_positions() @ m.T, atol=1e-12)
    for j, e in sk.end_sites.items():
        np.testing.assert_allclose(out.end_sites[j], 2.0 * m @ e)
    assert out.same_topology(sk) and not out.allclose(sk)


def test_validation_errors():
    off = np.zeros((3, 3))
    with pytest.raises(SkeletonMismatchError, match="repeated: a"):
        Skeleton(("a", "b", "a"), [-1, 0, 1], off)
    with pytest.raises(SkeletonMismatchError, match="parents before children"):
        Skeleton(("a", "b", "c"), [-1, 2, 0], off)
    with pytest.raises(SkeletonMismatchError, match="single root"):
        Skeleton(("a", "b", "c"), [-1, -1, 0], off)
    with pytest.raises(SkeletonMismatchError, match="expected \\(3,\\) and \\(3, 3\\)"):
        Skeleton(("a", "b", "c"), [-1, 0, 1], np.zeros((2, 3)))
    with pytest.raises(SkeletonMismatchError, match="finite"):
        Skeleton(("a", "b", "c"), [-1, 0, 1], np.full((3, 3), np.nan))
    with pytest.raises(SkeletonMismatchError, match="at least one joint"):
        Skeleton((), [], np.zeros((0, 3)))


def test_repr_is_short_and_dir_lists_lazy_names(data_dir):
    """A 31-joint skeleton prints as one short line (the dataclass repr printed every offset), and ``dir(optiq)``
    lists the lazily imported dataset functions."""
    import optiq

    sk = load_bvh(data_dir / "bvh/cmu_02_01_bvhtodeepmimic.bvh")[0].skeleton
    text = repr(sk)
    assert text.startswith("Skeleton(31 joints: Hips, LHipJoint,") and text.endswith("end sites: 7)")
    assert "\n" not in text and len(text) < 120
    assert {"open_dataset", "write_dataset", "load_clip"} <= set(dir(optiq))
