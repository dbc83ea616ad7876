"""Conversion of a file's world axes and length unit into optiq's convention: metres, right-handed, Z up.

Y-up files (BVH, Acclaim, DeepMimic, most FBX) are turned by the cyclic permutation (x, y, z) -> (z, x, y):
up +Y becomes +Z and the usual Y-up forward +Z becomes +X, the direction MuJoCo humanoids face.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import OptiqError, OptiqWarning

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


class UnitGuessWarning(OptiqWarning):
    """A file's length unit or up axis was guessed from weak or conflicting evidence. The message names the file,
    says what was assumed and the option that overrides it; the CLI prints it as one ``optiq: warning:`` line."""


class UnitError(OptiqError, ValueError):
    """A length unit that is unknown, zero, negative or not finite. A ValueError too, so loaders that catch one
    re-raise it naming their file; uncaught, the CLI still prints it as one line."""


def _positive(value: float, given: str | float) -> float:
    if not np.isfinite(value) or value <= 0:
        raise UnitError(f"length unit must be a positive, finite number of metres per file unit, got {given!r} "
                        "(zero collapses the skeleton, a negative unit turns it upside down)")
    return value


def length_scale(unit: str | float, extent: float | None = None) -> tuple[float, str]:
    """Metres per file unit, and the unit's name.

    unit: a name of LENGTH_UNITS, a number of metres per unit (or its name, ``"0.0254 m"``), or ``"auto"``: the
    unit among m, cm, mm, inch and cmu that makes ``extent`` (a standing person's height in file units) closest to
    a 1.7 m person (log scale). A unit that is zero, negative or not finite is refused (``UnitError``, a
    ValueError): it would collapse the skeleton or turn it upside down.
    """
    if isinstance(unit, (int, float)):
        return _positive(float(unit), unit), f"{float(unit):.12g} m"
    name = unit.lower().strip()
    if name == "auto":
        if not extent or extent <= 0 or not np.isfinite(extent):
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
    except ValueError:
        raise UnitError(
            f"unknown length unit {unit!r}; expected one of {', '.join(LENGTH_UNITS)}, 'auto' or metres per unit"
        ) from None
    return _positive(value, unit), f"{value:.12g} m"


def unit_name(metres: float) -> str:
    """The label of a unit of ``metres`` per file unit: a LENGTH_UNITS name when it is one (to 1e-9), else
    ``"<metres> m"`` (which ``length_scale`` reads back)."""
    named = next((k for k, v in LENGTH_UNITS.items() if k != "in" and abs(v - metres) <= 1e-9 * v), None)
    return named or f"{metres:.12g} m"


def scaled_unit(label: str | None, factor: float) -> str:
    """The ``length_unit`` label of a clip after every length was multiplied by ``factor`` (``--scale``).

    ``length_unit`` says what one unit of the source file is in metres: the factor that took the file's numbers
    to the metres the clip holds (a writer divides by it to give the file's numbers back). Scaling the metres by
    ``factor`` makes one file unit ``factor`` times as long: ``"cm"`` scaled by 5.644444 is ``"cmu"``, ``"m"``
    by 0.01 is ``"cm"``. label: the clip's label; a clip without one holds metres (``"m"``).
    """
    factor = float(factor)
    if not np.isfinite(factor) or factor <= 0:
        raise UnitError(f"scale must be a positive, finite number, got {factor:g} (zero collapses the skeleton, a "
                        "negative scale turns it upside down)")
    return unit_name(length_scale(label or "m")[0] * factor)


_UPPER_BODY = ("head", "neck", "spine", "chest", "torso", "back", "thorax", "clavicle", "shoulder")
# Joints below the hips of a standing person: feet and legs (CMU lfemur/ltibia, Mixamo LeftUpLeg, AMP right_shin).
_LOWER_BODY = ("foot", "toe", "ankle", "heel", "knee", "leg", "shin", "calf", "thigh", "femur", "tibia")


def _up_scores(names, pos: np.ndarray) -> np.ndarray | None:
    """How far the upper body stands above the legs along file x, y and z ``[3]`` (file units), the median over
    frames of ``pos [T, J, 3]``; None when no joint name hints at the upper body. The root stands in for the
    legs of a skeleton without leg names."""
    low = [n.lower() for n in names]
    upper = [i for i, n in enumerate(low) if any(k in n for k in _UPPER_BODY)]
    if not upper:
        return None
    lower = [i for i, n in enumerate(low) if any(k in n for k in _LOWER_BODY) and i not in upper] or [0]
    return np.median(pos[:, upper].mean(axis=1) - pos[:, lower].mean(axis=1), axis=0)


def _standing_axis(scores: np.ndarray | None) -> str | None:
    """``"y"`` or ``"z"`` when the upper body stands clearly above the legs along it (at least twice as far as
    along any other axis), else None (lying, upside down, or along x)."""
    if scores is None:
        return None
    a = int(np.argmax(scores))
    others = np.abs(np.delete(scores, a))
    return "xyz"[a] if a > 0 and scores[a] > 0 and scores[a] >= 2.0 * others.max() else None


def guess_up_axis(skeleton, positions: np.ndarray | None = None, default: str = "y") -> str:
    """``"y"`` or ``"z"``: the axis along which upper-body joints (head, neck, spine, chest...) lie above the legs
    (or the root).

    positions: world positions ``[T, J, 3]`` or ``[J, 3]`` to judge from; by default the rest pose. default: the
    answer when no joint name hints at the upper body. ``guess_units`` weighs the motion against the rest pose.
    """
    pos = skeleton.rest_positions() if positions is None else np.asarray(positions, dtype=np.float64)
    scores = _up_scores(skeleton.names, pos.reshape(-1, skeleton.num_joints, 3))
    if scores is None:
        return default
    return "z" if abs(scores[2]) > abs(scores[1]) else "y"


_MOTION_SAMPLES = 64  # frames enough to judge a clip's posture (median); more only cost forward kinematics


def motion_sample(clip):
    """The frames of ``clip`` that ``guess_units`` judges its motion by: at most 64, evenly spread (the clip
    itself when it is that short). ``guess_units`` of the sample is ``guess_units`` of the clip."""
    step = max(1, -(-clip.num_frames // _MOTION_SAMPLES))
    return clip.slice(step=step) if step > 1 else clip


def guess_units(clip, unit: str | float = "auto", up: str = "auto", *, path=None, default_up: str = "y",
                rest_pose: bool = True) -> tuple[str, float, str]:
    """The up axis, metres per unit and the unit's name of ``clip``, still in its file's axes and unit.

    up ``"auto"``: the axis along which the head, neck and spine stand above the feet and legs, in the median
    frame of the motion (at most 64 frames spread over the clip); the rest pose decides only when the motion does
    not stand clearly (lying, or no frames that stand). unit ``"auto"``: ``length_scale`` of the standing height
    along that axis: the rest pose's (with end sites), unless the motion's median height differs from it by more
    than 1.5x (a collapsed or tiny rest skeleton, a rest pose that does not stand along the axis the motion
    stands along): then the motion's. rest_pose: False when the rest pose is not a pose in the file's world
    axes (poselib's skeleton tree): only its size then counts. Conflicting or weak evidence is reported with
    ``UnitGuessWarning`` (naming ``path``, what was assumed and the option that overrides it).
    """
    auto_unit = isinstance(unit, str) and unit.strip().lower() == "auto"
    if up != "auto":
        axis_matrix(up)  # refuses an unknown axis
        if not auto_unit:
            return up.lower(), *length_scale(unit)
    sample = motion_sample(clip)
    fk = sample.forward_kinematics()
    ends = sample.end_site_positions(fk)
    motion = np.concatenate([fk[0], *(e[:, None] for e in ends.values())], axis=1)  # [T, J + E, 3]
    rest_j = clip.skeleton.rest_positions()
    rest = np.concatenate([rest_j, *(rest_j[[j]] + e for j, e in clip.skeleton.end_sites.items())])  # [J + E, 3]
    names = clip.skeleton.names
    motion_scores = _up_scores(names, fk[0])
    motion_up = _standing_axis(motion_scores)
    rest_up = _standing_axis(_up_scores(names, rest_j[None])) if rest_pose else None
    where = f"{path}: " if path is not None else ""
    if up == "auto":
        up = _choose_up(motion_up, rest_up, motion_scores, default_up, where)
    up = up.lower()
    if not auto_unit:
        return up, *length_scale(unit)
    a = "xyz".index(up)
    moving = np.ptp(motion, axis=0).max(axis=-1) > 0 if len(motion) > 1 else np.ones(motion.shape[1], bool)
    # Joints that never move (a file's static "joint_Root" left at the origin) are no part of the body's height.
    h_motion = float(np.median(np.ptp(motion[:, moving if moving.any() else slice(None), a], axis=1)))
    h_rest = float(np.ptp(rest[:, a]) if rest_pose else np.ptp(rest, axis=0).max())
    rest_ok = h_rest > 0 and (rest_up == up if rest_pose else True)
    if rest_ok and 1 / 1.5 <= h_motion / h_rest <= 1.5:
        return (up, *length_scale("auto", h_rest))
    scale, name = length_scale("auto", h_motion)
    if rest_ok:
        r_scale, r_name = length_scale("auto", h_rest)
        if r_name != name:
            warnings.warn(f"{where}guessed length unit {name} from the motion (a person {h_motion * scale:.2f} m "
                          f"tall), though the rest pose suggests {r_name} ({h_rest * r_scale:.2f} m); pass --unit "
                          "(unit=) to override", UnitGuessWarning, stacklevel=3)
    elif motion_up != up:
        warnings.warn(f"{where}neither the rest pose nor the motion stands along {up}: guessed length unit {name} "
                      f"(a person {h_motion * scale:.2f} m tall); pass --unit (unit=) to override",
                      UnitGuessWarning, stacklevel=3)
    return up, scale, name


def _choose_up(motion_up: str | None, rest_up: str | None, motion_scores: np.ndarray | None, default: str,
               where: str) -> str:
    if motion_up:
        if rest_up and rest_up != motion_up:
            warnings.warn(f"{where}guessed up axis {motion_up} from the motion, though the rest pose stands along "
                          f"{rest_up}; pass up={rest_up} to override", UnitGuessWarning, stacklevel=4)
        return motion_up
    if rest_up:
        return rest_up
    if motion_scores is None:
        guess, why = default, "no joint name tells the head from the feet"
    else:
        guess, why = ("z" if motion_scores[2] > motion_scores[1] else "y"), "the body does not stand along y or z"
    other = "y" if guess == "z" else "z"
    warnings.warn(f"{where}cannot tell the up axis ({why}): assumed up={guess}; pass up={other} to override",
                  UnitGuessWarning, stacklevel=4)
    return guess
