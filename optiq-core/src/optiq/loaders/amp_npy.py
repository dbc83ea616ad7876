"""AMP poselib ``.npy`` reader (IsaacGymEnvs ``SkeletonMotion`` and ``SkeletonState`` files).

The files are ``np.save`` of a 0-d object array holding a pickled dict: ``rotation`` ``[T, J, 4]`` (or ``[J, 4]``
for a state) quaternions xyzw, local unless ``is_local`` is false; ``root_translation`` ``[T, 3]``;
``skeleton_tree`` with ``node_names``, ``parent_indices`` and ``local_translation`` (the rest offsets); ``fps``.
Arrays may be wrapped as ``{"arr": array, "context": {...}}`` (poselib's TensorUtils).

Pickles can run code while loading, so the file is read with a restricted unpickler that admits only what numpy
arrays and plain containers need; ``np.load(allow_pickle=True)`` is never called. Poselib has no pre-rotations:
identity rotations give the pose that ``local_translation`` describes, so no folding is needed.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from .. import quat
from ..axes import axis_matrix, guess_units
from ..clip import Clip
from ..errors import ParseError
from ..skeleton import Skeleton

# The only globals a poselib file needs: ndarray reconstruction, dtypes, scalars and OrderedDict.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}

class _Refused(pickle.UnpicklingError):
    """A pickle asked for a global outside _ALLOWED."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy array and plain-container globals; any other raises _Refused
    before the object is built, so a malicious ``__reduce__`` never runs."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def npy_header(head: bytes) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype from the first bytes of an ``.npy`` file, or None when it is not one."""
    fh = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(fh)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(fh)
    except (ValueError, EOFError):
        return None
    return shape, dtype


def sniff_amp_npy(path: Path, head: bytes) -> bool:
    """An ``.npy`` holding a pickled object (poselib), not a plain numeric array."""
    info = npy_header(head)
    return info is not None and info[1].hasobject


def read_pickled_npy(path: str | os.PathLike) -> object:
    """The object inside an object-dtype ``.npy`` file, unpickled with RestrictedUnpickler.

    Raises ParseError for an empty, truncated or non-``.npy`` file, a plain numeric array, and a pickle that
    asks for any global outside numpy arrays and plain containers (naming the global it asked for).
    """
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror}", path) from None
    with fh:
        head = fh.read(4096)
        if not head:
            raise ParseError("file is empty", path)
        info = npy_header(head)
        if info is None:
            raise ParseError("not a numpy .npy file (bad magic or header)", path, "header")
        if not info[1].hasobject:
            raise ParseError(f"holds a plain {info[1]} array of shape {info[0]}, not a pickled poselib dict "
                             "(an NPY trajectory? use loader npy_traj)", path, "header")
        fh.seek(0)
        version = np.lib.format.read_magic(fh)
        (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(fh)
        try:
            obj = RestrictedUnpickler(fh).load()
        except _Refused as exc:
            raise ParseError(f"refused to unpickle {exc}: only numpy arrays and plain containers are allowed "
                             "(the file may be malicious)", path, "pickle") from None
        except (EOFError, pickle.UnpicklingError) as exc:
            raise ParseError(f"truncated or corrupt pickle ({exc or 'ran out of input'})", path, "pickle") from None
        except Exception as exc:  # a corrupt stream can fail inside numpy or the pickle machinery in many ways
            raise ParseError(f"corrupt pickle: {type(exc).__name__}: {exc}", path, "pickle") from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        obj = obj.item()
    return obj


def _array(d: dict, key: str, path: Path, where: str = "") -> np.ndarray:
    if not isinstance(d, dict) or key not in d:
        raise ParseError(f"missing key {key!r}", path, where + key)
    v = d[key]
    if isinstance(v, dict):
        if "arr" not in v:
            raise ParseError("expected an array or {'arr': array, 'context': ...}", path, where + key)
        v = v["arr"]
    try:
        return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParseError("expected a numeric array", path, where + key) from None


def load_amp_npy(path: str | os.PathLike, *, unit: str | float = "auto", up: str = "auto", fps: float = 30.0,
                 **_ignored) -> list[Clip]:
    """Read an AMP poselib ``.npy`` into one Clip (metres, Z up, wxyz).

    unit: the file's length unit (a LENGTH_UNITS name, metres per unit, or ``"auto"``: from the rest skeleton's
    size, or the motion's standing height where they disagree; AMP humanoid files are metres, the CMU T-pose CMU
    units, the SFU T-pose centimetres). up: ``"y"``, ``"z"`` or ``"auto"`` (the axis the posed body stands along;
    see :func:`optiq.axes.guess_units`). fps: the rate for a ``SkeletonState`` (one pose,
    no fps in the file); a ``SkeletonMotion`` gives its own. Labels: ``source``, ``poselib_type``,
    ``length_unit``, ``up``.
    """
    path = Path(path)
    d = read_pickled_npy(path)
    if not isinstance(d, dict):
        raise ParseError(f"expected a pickled poselib dict, got {type(d).__name__}", path, "pickle")
    tree = d.get("skeleton_tree")
    if not isinstance(tree, dict):
        raise ParseError("missing key 'skeleton_tree' (a dict)", path, "skeleton_tree")
    names_raw = tree.get("node_names")
    if names_raw is None or isinstance(names_raw, (str, bytes)):
        raise ParseError("missing key 'node_names' (a list of joint names)", path, "skeleton_tree.node_names")
    names = tuple(str(n) for n in names_raw)
    parents = _array(tree, "parent_indices", path, "skeleton_tree.").astype(np.int64)
    offsets = _array(tree, "local_translation", path, "skeleton_tree.")
    n = len(names)
    if parents.shape != (n,) or offsets.shape != (n, 3):
        raise ParseError(f"{n} node names but parent_indices {parents.shape} and local_translation "
                         f"{offsets.shape} (expected ({n},) and ({n}, 3))", path, "skeleton_tree")
    if n == 0 or parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, n)):
        raise ParseError("parent_indices must list each parent before its children with the root (-1) first",
                         path, "skeleton_tree.parent_indices")

    rot = _array(d, "rotation", path)
    root = _array(d, "root_translation", path)
    if rot.shape == (n, 4) and root.shape == (3,):  # a SkeletonState: one pose without a time axis
        rot, root = rot[None], root[None]
    if rot.ndim != 3 or rot.shape[1:] != (n, 4) or root.shape != (rot.shape[0], 3):
        raise ParseError(f"rotation {rot.shape} and root_translation {root.shape} do not fit {n} joints "
                         f"(expected [T, {n}, 4] and [T, 3])", path, "rotation")
    for arr, key in ((rot, "rotation"), (root, "root_translation"), (offsets[None], "local_translation")):
        bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        if bad.any():
            raise ParseError(f"{key} is not finite (NaN or inf)", path, f"frame {int(np.argmax(bad))}")
    norms = np.linalg.norm(rot, axis=-1)
    if np.any(norms < 1e-6):
        i, j = (int(x) for x in np.argwhere(norms < 1e-6)[0])
        raise ParseError(f"joint {names[j]!r} has a zero quaternion", path, f"frame {i}")
    rot = rot[..., [3, 0, 1, 2]] / norms[..., None]
    if not bool(d.get("is_local", True)):
        glob = rot
        rot = glob.copy()
        rot[:, 1:] = quat.qmul(quat.conj(glob[:, parents[1:]]), glob[:, 1:])

    rate = d.get("fps", fps)
    try:
        rate = float(np.asarray(rate))
    except (TypeError, ValueError):
        raise ParseError(f"fps must be a number, got {rate!r}", path, "fps") from None
    if not np.isfinite(rate) or rate <= 0:
        raise ParseError(f"fps must be positive, got {rate}", path, "fps")

    kind = str(d.get("__name__", "SkeletonMotion"))
    clip = Clip(Skeleton(names, parents, offsets), rate, root, rot, name=path.stem,
                labels={"source": path.name, "poselib_type": kind})
    try:
        # poselib's skeleton tree is no pose in the file's axes (a root rotation stands it up): only its size counts.
        up, scale, unit_name = guess_units(clip, unit, up, path=path, default_up="z", rest_pose=False)
    except ValueError as exc:
        raise ParseError(str(exc), path) from None
    out = clip.transformed(axis_matrix(up), scale)
    out.labels.update(length_unit=unit_name, up=up)
    return [out]
