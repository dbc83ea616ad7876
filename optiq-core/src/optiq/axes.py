"""Conversion of a file's world axes and length unit into optiq's convention: metres, right-handed, Z up.

Y-up files (BVH, Acclaim, DeepMimic, most FBX) are turned by the cyclic permutation (x, y, z) -> (z, x, y):
up +Y becomes +Z and the usual Y-up forward +Z becomes +X, the direction MuJoCo humanoids face.
"""

from __future__ import annotations

import numpy as np

# Rows: optiq axes expressed in the file's axes.
Y_UP_TO_Z_UP = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
Z_UP = np.eye(3)

LENGTH_UNITS = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "inch": 0.0254,
    "in": 0.0254,
    "ft": 0.3048,
    # The CMU Acclaim unit: `length 0.45` in the ASF means 1 unit = 1/0.45 inch.
    "cmu": 0.0254 / 0.45,
}

TYPICAL_HEIGHT_M = 1.7


def axis_matrix(up: str) -> np.ndarray:
    """The rotation taking a file's axes to optiq's; ``up`` is ``"y"`` or ``"z"``."""
    up = up.lower()
    if up == "y":
        return Y_UP_TO_Z_UP
    if up == "z":
        return Z_UP
    raise ValueError(f"unknown up axis {up!r}; expected 'y' or 'z'")


def length_scale(unit: str | float, extent: float | None = None) -> tuple[float, str]:
    """Metres per file unit, and the unit's name.

    unit: a name of LENGTH_UNITS, a number of metres per unit (or its name, ``"0.0254 m"``), or ``"auto"``: the unit among m, cm, mm, inch and
    cmu that makes ``extent`` (the rest skeleton's height in file units) closest to a 1.7 m person (log scale).
    """
    if isinstance(unit, (int, float)):
        return float(unit), f"{float(unit):.12g} m"
    name = unit.lower().strip()
    if name == "auto":
        if not extent or extent <= 0:
            return 1.0, "m"
        candidates = ["m", "cm", "mm", "inch", "cmu"]
        errs = [abs(np.log(extent * LENGTH_UNITS[c] / TYPICAL_HEIGHT_M)) for c in candidates]
        best = candidates[int(np.argmin(errs))]
        return LENGTH_UNITS[best], best
    if name in LENGTH_UNITS:
        return LENGTH_UNITS[name], name
    try:
        # "0.0564444444444 m" is the name this function gives a number, so a recorded unit label reads back.
        value = float(name[:-2] if name.endswith(" m") else name)
        return value, f"{value:.12g} m"
    except ValueError:
        raise ValueError(
            f"unknown length unit {unit!r}; expected one of {', '.join(LENGTH_UNITS)}, 'auto' or metres per unit"
        ) from None


_UPPER_BODY = ("head", "neck", "spine", "chest", "torso", "back", "thorax", "clavicle", "shoulder")


def guess_up_axis(skeleton, positions: np.ndarray | None = None, default: str = "y") -> str:
    """``"y"`` or ``"z"``: the axis along which upper-body joints (head, neck, spine, chest...) lie above the root.

    positions: world positions ``[T, J, 3]`` or ``[J, 3]`` to judge from; by default the rest pose. Posed
    positions decide for files whose rest skeleton is turned upright only by a root rotation (poselib's CMU
    T-pose). default: the answer when no joint name hints at the upper body.
    """
    pos = skeleton.rest_positions() if positions is None else np.asarray(positions, dtype=np.float64)
    pos = pos.reshape(-1, skeleton.num_joints, 3)
    idx = [i for i, n in enumerate(skeleton.names) if any(k in n.lower() for k in _UPPER_BODY)]
    if not idx:
        return default
    v = (pos[:, idx] - pos[:, :1]).mean(axis=(0, 1))
    return "z" if abs(v[2]) > abs(v[1]) else "y"
