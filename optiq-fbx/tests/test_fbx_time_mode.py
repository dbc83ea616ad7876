"""GlobalSettings TimeMode 0 (eDefaultMode): 30 fps, as ufbx reads it (its time-mode table starts with 30 for
the default mode) and as the FBX SDK's global default time mode is, whatever CustomFrameRate says; CustomFrameRate
counts for TimeMode 14 (custom) only. Real files with their TimeMode patched, binary and ASCII."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from optiq_fbx.loader import load_fbx

sys.path.insert(0, str(Path(__file__).parent))
import ufbx_oracle  # noqa: E402

# The TimeMode P record of a binary FBX up to its value: "TimeMode", "enum", "", "", then an int32 ('I').
_BINARY_KEY = b"S\x08\x00\x00\x00TimeModeS\x04\x00\x00\x00enumS\x00\x00\x00\x00S\x00\x00\x00\x00I"


def _patched_binary(src: Path, out: Path, mode: int) -> Path:
    data = bytearray(src.read_bytes())
    at = data.index(_BINARY_KEY) + len(_BINARY_KEY)
    data[at:at + 4] = mode.to_bytes(4, "little")
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("name, mode, custom, fps, frames", [
    # Maya scene, TimeMode 6 (30 fps), CustomFrameRate -1: keys over 2 s.
    ("ufbx_maya_anim_interpolation_7700_binary.fbx", 0, -1.0, 30.0, 61),
    # Blender/assimp file, TimeMode 10 (PAL, 25 fps), CustomFrameRate 25: 1.56 s.
    ("assimp_huesitos.fbx", 0, 25.0, 30.0, 47),
    ("assimp_huesitos.fbx", 14, 25.0, 25.0, 40),
])
def test_default_time_mode_is_30_fps_like_ufbx(data_dir, tmp_path, name, mode, custom, fps, frames):
    path = _patched_binary(data_dir / "fbx" / name, tmp_path / name, mode)
    oracle = ufbx_oracle.oracle_scene(path)
    assert oracle["file_fps"] == fps
    (clip,) = load_fbx(path)
    assert clip.fps == fps and clip.num_frames == frames == len(oracle["stacks"][0]["times"])
    # The patch changed nothing but the rate: resampled at the file's own rate, the same motion comes back.
    (orig,) = load_fbx(data_dir / "fbx" / name, fps=fps)
    np.testing.assert_array_equal(clip.world_positions(), orig.world_positions())


def test_ascii_default_time_mode_is_30_fps(data_dir, tmp_path):
    text = (data_dir / "fbx" / "ufbx_maya_anim_interpolation_7700_ascii.fbx").read_text()
    line = 'P: "TimeMode", "enum", "", "",6'
    assert text.count(line) == 1
    path = tmp_path / "default_mode.fbx"
    path.write_text(text.replace(line, line[:-1] + "0"))
    assert ufbx_oracle.oracle_scene(path)["file_fps"] == 30.0
    (clip,) = load_fbx(path)
    assert (clip.fps, clip.num_frames) == (30.0, 61)


def test_writer_never_writes_the_default_mode(tmp_path, data_dir):
    """A 30 fps clip is written as TimeMode 6 (30 fps), not 0: readers differ on what 0 means."""
    import optiq

    clip = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt")
    assert clip.fps == 30.0
    path = tmp_path / "walk.fbx"
    optiq.save_clip(clip, path)
    data = path.read_bytes()
    at = data.index(_BINARY_KEY) + len(_BINARY_KEY)
    assert int.from_bytes(data[at:at + 4], "little") == 6
