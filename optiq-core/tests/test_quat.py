"""Quaternion helpers against scipy's Rotation (an independent implementation; scipy stores xyzw).

Sample rotations come from a real clip (every joint of every frame of the CMU 02_01 walk) plus scipy's random ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from optiq import quat
from optiq.loaders.bvh import load_bvh
from scipy.spatial.transform import Rotation, Slerp

ORDERS = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]


def to_scipy(q: np.ndarray) -> Rotation:
    return Rotation.from_quat(np.asarray(q).reshape(-1, 4)[:, [1, 2, 3, 0]])


def from_scipy(r: Rotation) -> np.ndarray:
    return r.as_quat()[:, [3, 0, 1, 2]]


def same_rotation(a: np.ndarray, b: np.ndarray, atol: float = 1e-12) -> None:
    """Equal up to the sign of the quaternion (q and -q are one rotation)."""
    a, b = np.asarray(a).reshape(-1, 4), np.asarray(b).reshape(-1, 4)
    err = np.minimum(np.abs(a - b).max(axis=-1), np.abs(a + b).max(axis=-1))
    assert err.max() <= atol, err.max()


@pytest.fixture(scope="module")
def real(data_dir) -> np.ndarray:
    """Local rotations of a real walk, [T*J, 4] (the T-pose frame left out)."""
    clip = load_bvh(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh", drop_tpose=True)[0]
    return clip.rotations.reshape(-1, 4)


@pytest.fixture(scope="module")
def pairs(real) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    other = from_scipy(Rotation.random(len(real), random_state=3))
    return real[rng.permutation(len(real))], other


def test_real_rotations_are_unit_and_varied(real):
    np.testing.assert_allclose(np.linalg.norm(real, axis=-1), 1.0, atol=1e-12)
    assert quat.angle_between(real, quat.identity((len(real),))).max() > np.radians(60)


def test_qmul_matches_scipy_composition(pairs):
    a, b = pairs
    same_rotation(quat.qmul(a, b), from_scipy(to_scipy(a) * to_scipy(b)))
    # Broadcasting: one quaternion against many.
    same_rotation(quat.qmul(a[:1], b), from_scipy(to_scipy(a[:1]) * to_scipy(b)))


def test_rotate_matches_scipy_apply(pairs):
    a, _ = pairs
    v = np.random.default_rng(1).normal(size=(len(a), 3))
    np.testing.assert_allclose(quat.rotate(a, v), to_scipy(a).apply(v), atol=1e-12)
    assert quat.rotate(a[:5, None], v[None, :7]).shape == (5, 7, 3)


def test_conj_is_the_inverse(pairs):
    a, _ = pairs
    same_rotation(quat.conj(a), from_scipy(to_scipy(a).inv()))
    same_rotation(quat.qmul(a, quat.conj(a)), quat.identity((len(a),)))


def test_matrices_match_scipy(pairs):
    a, _ = pairs
    np.testing.assert_allclose(quat.to_matrix(a), to_scipy(a).as_matrix(), atol=1e-12)
    back = quat.from_matrix(to_scipy(a).as_matrix())
    same_rotation(back, a)
    assert np.all(back[:, 0] >= 0)


def test_components_first_matrices_match_scipy(pairs):
    """from_matrix_parts ([3, 3, ...] -> [4, ...], Shepperd in numpy) gives scipy's rotations."""
    a, _ = pairs
    m = np.moveaxis(to_scipy(a).as_matrix(), (1, 2), (0, 1))
    same_rotation(np.moveaxis(quat.from_matrix_parts(m), 0, -1), a)


def test_rotation_vectors_match_scipy(pairs):
    a, _ = pairs
    np.testing.assert_allclose(quat.to_rotvec(a), to_scipy(a).as_rotvec(), atol=1e-10)
    same_rotation(quat.from_rotvec(to_scipy(a).as_rotvec()), a, atol=1e-12)
    # Tiny rotations keep their exact size.
    tiny = np.array([[1e-14, 0.0, 0.0]])
    np.testing.assert_allclose(quat.to_rotvec(quat.from_rotvec(tiny)), tiny, rtol=1e-9)


def test_angle_between_matches_scipy(pairs):
    a, b = pairs
    expected = (to_scipy(a).inv() * to_scipy(b)).magnitude()
    np.testing.assert_allclose(quat.angle_between(a, b), expected, atol=2e-7)  # arccos near 1 costs precision
    np.testing.assert_allclose(quat.angle_between(a, -a), 0.0, atol=2e-7)


def test_slerp_matches_scipy(pairs):
    a, b = pairs
    n = 200
    for t in (0.0, 0.25, 0.5, 0.9, 1.0):
        expected = np.array([
            from_scipy(Slerp([0.0, 1.0], to_scipy(np.stack((a[i], b[i]))))([t]))[0] for i in range(n)
        ])
        same_rotation(quat.slerp(a[:n], b[:n], np.full(n, t)), expected, atol=1e-9)


def test_slerp_of_nearly_equal_quaternions_is_stable():
    q = from_scipy(Rotation.from_rotvec([[0.3, 0.2, 0.1]]))
    r = quat.slerp(q, q, np.array([0.5]))
    same_rotation(r, q)
    assert np.all(np.isfinite(r))


@pytest.mark.parametrize("order", ORDERS)
def test_from_euler_matches_scipy_intrinsic(order):
    angles = np.random.default_rng(5).uniform(-np.pi, np.pi, size=(500, 3))
    same_rotation(quat.from_euler(angles, order), from_scipy(Rotation.from_euler(order, angles)))
    same_rotation(quat.from_euler(angles, order.lower()), quat.from_euler(angles, order))


def test_from_euler_zyx_is_rz_ry_rx():
    angles = np.array([0.3, -1.1, 2.0])
    m = quat.to_matrix(quat.from_euler(angles, "ZYX"))
    c, s = np.cos, np.sin
    rz = np.array([[c(0.3), -s(0.3), 0], [s(0.3), c(0.3), 0], [0, 0, 1]])
    ry = np.array([[c(-1.1), 0, s(-1.1)], [0, 1, 0], [-s(-1.1), 0, c(-1.1)]])
    rx = np.array([[1, 0, 0], [0, c(2.0), -s(2.0)], [0, s(2.0), c(2.0)]])
    np.testing.assert_allclose(m, rz @ ry @ rx, atol=1e-12)


@pytest.mark.parametrize("order", ["ZYZ", "XYX"])
def test_from_euler_proper_orders(order):
    angles = np.random.default_rng(2).uniform(-np.pi, np.pi, size=(100, 3))
    same_rotation(quat.from_euler(angles, order), from_scipy(Rotation.from_euler(order, angles)))


@pytest.mark.parametrize("order", ORDERS)
def test_euler_round_trip_on_real_rotations(real, order):
    angles = quat.to_euler(real, order)
    same_rotation(quat.from_euler(angles, order), real, atol=1e-9)
    # The middle angle lies in [-pi/2, pi/2] (Tait-Bryan), the others in [-pi, pi].
    assert np.abs(angles[:, 1]).max() <= np.pi / 2 + 1e-12 and np.abs(angles).max() <= np.pi + 1e-12


def test_bad_euler_order_is_rejected():
    with pytest.raises(ValueError, match="unknown Euler order 'ZWX'"):
        quat.from_euler(np.zeros(3), "ZWX")


def test_make_continuous_removes_sign_flips(real):
    q = real[:300].copy()
    flipped = q * np.where(np.arange(300) % 3 == 0, -1.0, 1.0)[:, None]
    cont = quat.make_continuous(flipped)
    same_rotation(cont, q)
    # After the fix no step crosses hemispheres unless the rotation itself turns more than 180 degrees.
    assert np.all(np.sum(cont[1:] * cont[:-1], axis=-1) >= 0)


def test_normalize_rejects_zero():
    np.testing.assert_allclose(quat.normalize(np.array([2.0, 0, 0, 0])), [1, 0, 0, 0])
    with pytest.raises(ValueError, match="zero-norm"):
        quat.normalize(np.zeros((2, 4)))
