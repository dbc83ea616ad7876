"""Clip names of FBX files (loader option ``name_from``): a folder of exports whose stacks all say "Take 001"
converts, files with several stacks name each clip ``<stem>:<stack>``, and every name is a valid dataset name."""

from __future__ import annotations

import shutil

import numpy as np
import optiq
import pytest
from optiq.convert import convert
from optiq.errors import ParseError
from optiq.names import check_name
from optiq_fbx.binary import parse_binary
from optiq_fbx.binary_write import encode_fbx
from optiq_fbx.nodes import Node
from optiq_fbx.scene import object_name

TAKE = "ufbx_maya_anim_interpolation_7700_binary.fbx"  # one AnimationStack, "Take 001" (Maya's default name)


def _stack_names(data: bytes) -> list[str]:
    """AnimationStack names read from the raw records (not through the loader)."""
    _, top = parse_binary(data, None)
    objects = next(n for n in top if n.name == "Objects")
    return [object_name(o.props[1]) for o in objects.children if o.name == "AnimationStack"]


def test_a_folder_of_take_001_exports_converts(data_dir, tmp_path):
    src = data_dir / "fbx" / TAKE
    assert _stack_names(src.read_bytes()) == ["Take 001"]
    folder = tmp_path / "exports"
    folder.mkdir()
    for stem in ("jump", "walk"):
        shutil.copyfile(src, folder / f"{stem}.fbx")
    result = convert([folder], tmp_path / "takes.parquet")
    assert [c.name for c in result.clips] == ["jump", "walk"]
    assert [c.labels["stack"] for c in result.clips] == ["Take 001", "Take 001"]
    with optiq.open_dataset(tmp_path / "takes.parquet") as ds:
        assert sorted(ds.clip_names) == ["jump", "walk"]
    # Named after the stack, as before, the two files collide.
    assert [c.name for c in optiq.load(folder / "walk.fbx", name_from="stack")] == ["Take 001"]


def _two_stacks(data_dir, path, second: str = "Take 002"):
    """A real clip (DeepMimic walk) written by our writer with its stack named "Take 001", plus a second
    AnimationStack named ``second`` playing the same layer, at ``path``."""
    from optiq_fbx.writer import fbx_nodes

    clip = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt").replace(name="Take 001")
    top = fbx_nodes(clip)
    objects = next(n for n in top if n.name == "Objects")
    connections = next(n for n in top if n.name == "Connections")
    stack = next(o for o in objects.children if o.name == "AnimationStack")
    layer = next(o for o in objects.children if o.name == "AnimationLayer")
    new_id = np.int64(9_000_001)
    objects.children.append(Node("AnimationStack", [new_id, f"{second}\x00\x01AnimStack", ""],
                                 list(stack.children)))
    connections.children.append(Node("C", ["OO", layer.props[0], new_id]))
    path.write_bytes(encode_fbx(top))
    assert _stack_names(path.read_bytes()) == ["Take 001", second]
    return path


def test_several_stacks_are_named_stem_colon_stack(data_dir, tmp_path):
    path = _two_stacks(data_dir, tmp_path / "moves.fbx")
    clips = optiq.load(path)
    assert [c.name for c in clips] == ["moves:Take 001", "moves:Take 002"]
    # One stack picked out of several keeps its "<stem>:<stack>" name: the name does not depend on the option.
    assert [c.name for c in optiq.load(path, stack="Take 002")] == ["moves:Take 002"]
    assert [c.name for c in optiq.load(path, name_from="stack")] == ["Take 001", "Take 002"]
    np.testing.assert_array_equal(clips[0].rotations, clips[1].rotations)  # the same layer plays in both


def test_two_stacks_of_one_name_give_two_names(data_dir, tmp_path):
    path = _two_stacks(data_dir, tmp_path / "twice.fbx", second="Take 001")
    assert [c.name for c in optiq.load(path)] == ["twice:Take 001", "twice:Take 001.1"]
    assert [c.name for c in optiq.load(path, name_from="stack")] == ["Take 001", "Take 001.1"]
    assert [c.labels["stack"] for c in optiq.load(path)] == ["Take 001", "Take 001"]


def test_names_follow_the_dataset_name_rule(data_dir, tmp_path):
    """A stack name holding '/', a tab and surrounding spaces becomes a valid name; the label keeps it as is."""
    raw = " run/fast\tv2 "
    path = _two_stacks(data_dir, tmp_path / "odd.fbx", second=raw)
    by_stack = [c.name for c in optiq.load(path, name_from="stack")]
    by_file = [c.name for c in optiq.load(path)]
    assert by_stack == ["Take 001", "run_fast_v2"] and by_file == ["odd:Take 001", "odd: run_fast_v2"]
    for name in by_stack + by_file:
        assert check_name(name, "clip name") == name
    assert optiq.load(path, stack=raw)[0].labels["stack"] == raw


def test_unknown_name_from_is_an_error(data_dir):
    with pytest.raises(ParseError, match=r"name_from must be one of 'file', 'stack', got 'take'"):
        optiq.load(data_dir / "fbx" / TAKE, name_from="take")
