"""An independent FBX oracle: ufbx (the C library, through its 0.0.5 Python binding) in a forked child process.

The binding crashes the interpreter when a list such as ``scene.nodes`` is read twice or when a scene is freed, so
the child reads every list once (and indexes the Python list it got), keeps every object it touched alive, runs
with the garbage collector off, sends plain numpy arrays back through a pipe and leaves with ``os._exit(0)``:
nothing is ever freed. The parent process never imports ufbx.

Results are in the FILE's axes and units (no axis or unit conversion is asked of ufbx), with
``inherit_mode_handling=COMPENSATE`` so that world matrices follow FBX's inherit types (RrSs, RSrs, Rrs).
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np

# ufbx CoordinateAxis codes (POSITIVE_X=0, NEGATIVE_X=1, ..., NEGATIVE_Z=5) as signed unit vectors.
_AXIS_VECTORS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)


def axis_vector(code: int) -> np.ndarray:
    """The unit vector ``[3]`` of a ufbx CoordinateAxis code."""
    return _AXIS_VECTORS[int(code)]


# Every ufbx object the child touches, referenced from a module global so that not even the end of a function
# frame releases one (the binding crashes when a scene is freed).
_KEEP: list = []


def _matrix(m) -> np.ndarray:
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = m.c0, m.c1, m.c2, m.c3
    return out


def in_forked_child(fn, *args, what: str = "ufbx child"):
    """``fn(*args)`` run in a forked child that never frees anything (garbage collector off, ``os._exit``); its
    picklable result comes back through a pipe. Raises RuntimeError naming ``what`` when the child fails."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(rfd)
        code = 0
        try:
            import gc

            gc.disable()
            data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(wfd, "wb") as f:
                f.write(struct.pack("<Q", len(data)))
                f.write(data)
        except BaseException:  # noqa: BLE001 - any failure is reported to the parent as an exit status
            code = 3
        os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        head = f.read(8)
        payload = f.read(struct.unpack("<Q", head)[0]) if len(head) == 8 else b""
    _, status = os.waitpid(pid, 0)
    if not payload or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{what} failed (exit {os.waitstatus_to_exitcode(status)})")
    return pickle.loads(payload)


def _child(path: str, fps: float | None) -> dict:
    import ufbx

    keep = _KEEP
    scene = ufbx.load_file(path, inherit_mode_handling=ufbx.InheritModeHandling.COMPENSATE)
    keep.append(scene)
    settings = scene.settings
    keep.append(settings)
    axes = settings.axes
    nodes = list(scene.nodes)  # read once
    keep.append(nodes)
    ids = [n.element_id for n in nodes]
    index = {e: i for i, e in enumerate(ids)}
    names, parents, kinds, inherit = [], [], [], []
    rest = np.empty((len(nodes), 4, 4))
    for i, n in enumerate(nodes):
        keep.append(n)
        names.append(n.name)
        p = n.parent
        keep.append(p)
        parents.append(-1 if p is None else index[p.element_id])
        kinds.append(int(n.attrib_type))
        inherit.append(int(n.original_inherit_mode))
        rest[i] = _matrix(n.node_to_world)
    rate = float(settings.frames_per_second) if fps is None else float(fps)
    stacks = []
    for stack in list(scene.anim_stacks):
        keep.append(stack)
        anim = stack.anim
        keep.append(anim)
        t0, t1 = float(stack.time_begin), float(stack.time_end)
        n_frames = int(np.floor((t1 - t0) * rate + 1e-6)) + 1
        times = t0 + np.arange(n_frames) / rate
        world = np.empty((n_frames, len(nodes), 4, 4))
        local_rot = np.empty((n_frames, len(nodes), 4))
        for k, t in enumerate(times):
            ev = ufbx.evaluate_scene(scene, anim, float(t))
            keep.append(ev)
            ev_nodes = list(ev.nodes)
            keep.append(ev_nodes)
            for i, n in enumerate(ev_nodes):
                keep.append(n)
                world[k, i] = _matrix(n.node_to_world)
                q = n.local_transform.rotation
                local_rot[k, i] = (q.w, q.x, q.y, q.z)
        stacks.append({"name": stack.name, "time_begin": t0, "time_end": t1, "times": times, "world": world,
                       "local_rotations": local_rot})
    return {
        "names": names, "parents": np.array(parents), "kinds": np.array(kinds), "inherit": np.array(inherit),
        "rest_world": rest, "fps": rate, "file_fps": float(settings.frames_per_second),
        "unit_meters": float(settings.unit_meters),
        "axes": (int(axes.right), int(axes.up), int(axes.front)),
        "stacks": stacks,
    }


def oracle_scene(path: str | os.PathLike, fps: float | None = None) -> dict:
    """Everything ufbx says about the nodes and animation of the FBX file ``path``.

    Returns a dict: ``names`` (N node names, without the ``Model::`` prefix), ``parents`` [N] (index, -1 for the
    scene root), ``kinds`` [N] (ufbx ElementType of the node's attribute: 5 = bone, 6 = empty, 2 = mesh...),
    ``inherit`` [N] (ufbx's InheritMode of the file's InheritType: 0 normal = RSrs, 1 ignore parent scale = Rrs,
    2 component-wise scale = RrSs), ``rest_world`` [N, 4, 4]
    (node-to-world matrices of the default pose, the properties without animation), ``fps`` (the sampling rate
    used: ``fps`` or the file's), ``file_fps``, ``unit_meters`` (metres per file unit), ``axes`` (ufbx
    CoordinateAxis codes of the file's right, up and front axes; :func:`axis_vector` turns one into a vector) and
    ``stacks``: one dict per AnimationStack with ``name``, ``time_begin``/``time_end`` (seconds), ``times`` [T]
    (seconds: ``time_begin + k / fps``), ``world`` [T, N, 4, 4] node-to-world matrices and ``local_rotations``
    [T, N, 4] wxyz (ufbx's local rotation, pre- and post-rotations included). Positions are in the file's axes
    and units. Raises RuntimeError when the child dies or ufbx cannot load the file.
    """
    return in_forked_child(_child, os.fspath(path), fps, what=f"ufbx child on {Path(path).name}")


def polar_rotation(m: np.ndarray) -> np.ndarray:
    """The rotation part ``[..., 3, 3]`` of linear maps ``[..., 3, 3]`` (polar decomposition by SVD)."""
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    return r


def oracle_positions(path: str | os.PathLike, fps: float | None = None) -> dict:
    """ufbx's joint motion of ``path`` per stack, in the file's axes and units.

    Returns a dict: ``names`` [N], ``parents`` [N], ``fps``, ``unit_meters``, ``axes`` (as :func:`oracle_scene`),
    and ``stacks``: ``{stack name: {"positions": [T, N, 3] world node origins (file units and axes),
    "world_rotations": [T, N, 3, 3] rotation part of the world matrices, "local_rotations": [T, N, 4] wxyz,
    "times": [T] seconds}}``, plus ``rest_positions`` [N, 3] and ``rest_rotations`` [N, 3, 3] of the default pose.
    """
    s = oracle_scene(path, fps)
    stacks = {}
    for st in s["stacks"]:
        w = st["world"]
        stacks[st["name"]] = {"positions": w[..., :3, 3], "world_rotations": polar_rotation(w[..., :3, :3]),
                              "local_rotations": st["local_rotations"], "times": st["times"]}
    return {"names": s["names"], "parents": s["parents"], "kinds": s["kinds"], "fps": s["fps"],
            "file_fps": s["file_fps"], "unit_meters": s["unit_meters"], "axes": s["axes"], "stacks": stacks,
            "rest_positions": s["rest_world"][:, :3, 3], "rest_rotations": polar_rotation(s["rest_world"][:, :3, :3])}


def as_clip_motion(oracle: dict, stack: str, skeleton) -> tuple[np.ndarray, np.ndarray]:
    """ufbx's motion of ``skeleton``'s joints (matched by name) in ``stack``, as an optiq Clip holds it: world
    positions ``[T, J, 3]`` in metres and optiq's axes (the file's front -> +X, right -> +Y, up -> +Z, from ufbx's
    reading of them), and local rotations ``[T, J, 4]`` wxyz folded as ``Clip.rotations`` are: world rotations
    relative to the default pose, then relative to the parent joint."""
    from optiq import quat

    right, up, front = (axis_vector(a) for a in oracle["axes"])
    conv = np.stack([front, right, up])
    st = oracle["stacks"][stack]
    idx = np.array([oracle["names"].index(n) for n in skeleton.names])
    positions = st["positions"][:, idx] @ conv.T * oracle["unit_meters"]
    world = quat.from_matrix(conv @ st["world_rotations"][:, idx] @ conv.T)
    rest = quat.from_matrix(conv @ oracle["rest_rotations"][idx] @ conv.T)
    folded = quat.qmul(world, quat.conj(rest)[None])
    parents = skeleton.parents
    local = folded.copy()
    local[:, 1:] = quat.qmul(quat.conj(folded[:, parents[1:]]), folded[:, 1:])
    return positions, local
