"""The plugin system end to end: the installed example plugin, a broken plugin, a clashing plugin, the
environment switches, lazy ``module:attr`` targets, install hints, and one ``test_hook_<name>`` per hook.

CLI behaviour is tested through the real ``optiq`` CLI in a subprocess, with temporary plugin installs on
PYTHONPATH (tests/plugin_env.py); registry behaviour in-process with the ``optiq_plugins`` fixture.
"""

from __future__ import annotations

import csv
import json
import shutil
from importlib import metadata

import click
import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq import PluginError
from optiq.plugins import PluginManager, get_manager, registry
from plugin_env import PLUGINS, install_dist, install_source_plugin, run_optiq

pytest_plugins = ["optiq.testing"]  # the optiq_plugins fixture

WALK = "bvh/cmu_02_01_bvhtodeepmimic.bvh"  # 31 joints, 120 fps, 344 frames (data README)


@pytest.fixture(scope="session")
def example_installed() -> None:
    try:
        metadata.distribution("optiq-example-plugin")
    except metadata.PackageNotFoundError:
        pytest.fail("optiq-example-plugin is not installed in this environment; run `make setup`")


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory):
    """A folder on which the deliberately broken plugin package is installed."""
    site = tmp_path_factory.mktemp("broken_site")
    assert install_source_plugin(site, PLUGINS / "optiq-broken-plugin") == "optiq-broken-plugin"
    return site


@pytest.fixture(scope="session")
def clash_site(tmp_path_factory):
    """A plugin that registers a loader named "bvh", which core already registers."""
    site = tmp_path_factory.mktemp("clash_site")
    (site / "optiq_clash_plugin.py").write_text(
        "import optiq\n\n\n"
        "@optiq.hookimpl\n"
        "def optiq_register_loaders(register):\n"
        "    register('bvh', 'optiq_clash_plugin:load', suffixes=('.bvh',))\n"
    )
    install_dist(site, "optiq-clash-plugin", "0.3.0", {"clash": "optiq_clash_plugin"})
    return site


@pytest.fixture(scope="module")
def listing(example_installed):
    result = run_optiq("plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)["plugins"]}


def _walk_csvmotion(clip: optiq.Clip, path) -> None:
    """Write ``clip`` in the csvmotion layout of the example plugin's docstring with the csv module (independent
    of the plugin's own writer)."""
    sk = clip.skeleton
    with open(path, "w", newline="") as fh:
        fh.write(f"# csvmotion 1\n# fps: {clip.fps!r}\n")
        for name, parent, off in zip(sk.names, sk.parents, sk.offsets.tolist(), strict=True):
            fh.write(f"# joint: {name},{sk.names[parent] if parent >= 0 else ''},{off[0]!r},{off[1]!r},{off[2]!r}\n")
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["frame", "root_x", "root_y", "root_z"] + [f"{n}.q{c}" for n in sk.names for c in "wxyz"])
        for t in range(clip.num_frames):
            w.writerow([t, *map(repr, clip.root_translation[t].tolist()), *map(repr, clip.rotations[t].ravel().tolist())])


# --- core and the installed example plugin ---------------------------------------------------------------------
def test_core_registers_through_the_same_hooks(listing):
    core = listing["core"]
    assert (core["distribution"], core["status"]) == ("optiq-core", "ok")
    assert core["version"] == metadata.version("optiq-core")
    assert {"optiq_register_loaders", "optiq_register_formats"} <= set(core["hooks"])
    loaders = {c["name"]: c for c in core["capabilities"]["loaders"]}
    assert loaders["bvh"]["suffixes"] == [".bvh"]
    assert loaders["bvh"]["target"] == "optiq.loaders.bvh:load_bvh"
    assert {"bvh", "asf_amc", "deepmimic", "amp_npy", "npy_traj", "json"} <= set(loaders)
    formats = {c["name"]: c["suffixes"] for c in core["capabilities"]["formats"]}
    assert formats["parquet"] == [".parquet"] and formats["hdf5"] == [".h5", ".hdf5"]


def test_example_plugin_is_listed_with_everything_it_registered(listing):
    ex = listing["example"]
    assert (ex["distribution"], ex["version"], ex["status"], ex["error"]) == ("optiq-example-plugin", "0.1.0", "ok", None)
    assert ex["hooks"] == ["optiq_register_commands", "optiq_register_loaders", "optiq_register_models",
                           "optiq_register_renderers"]
    assert [(m["name"], m["target"]) for m in ex["capabilities"]["models"]] == [("gru", "optiq_example_plugin.gru:GRUModel")]
    (loader,) = ex["capabilities"]["loaders"]
    assert (loader["name"], loader["suffixes"], loader["target"]) == (
        "csvmotion", [".mcsv"], "optiq_example_plugin.csvmotion:load_csvmotion")
    assert loader["write"] == "optiq_example_plugin.csvmotion:write_csvmotion"
    assert [r["name"] for r in ex["capabilities"]["renderers"]] == ["positions-csv"]
    assert [c["name"] for c in ex["capabilities"]["commands"]] == ["csvmotion"]


def test_plugins_list_table(example_installed):
    result = run_optiq("plugins", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "HOOKS"]
    assert ["example", "optiq-example-plugin", "0.1.0", "ok", "commands,loaders,models,renderers"] in [ln.split() for ln in lines]
    assert "  example: loader csvmotion (.mcsv) [write]" in lines
    assert "  core: format hdf5 (.h5 .hdf5)" in lines


def test_example_loader_reads_a_real_clip_through_optiq_load(data_dir, tmp_path, example_installed):
    walk = optiq.load_clip(data_dir / WALK)
    path = tmp_path / "walk.mcsv"
    _walk_csvmotion(walk, path)
    cap = optiq.io.loader_for(path)
    assert (cap.name, cap.plugin) == ("csvmotion", "example")
    (clip,) = optiq.load(path)
    assert (clip.num_frames, clip.num_joints, clip.fps) == (344, 31, 120.0)
    assert clip.skeleton.names == walk.skeleton.names
    np.testing.assert_array_equal(clip.skeleton.parents, walk.skeleton.parents)
    np.testing.assert_array_equal(clip.rotations, walk.rotations)
    np.testing.assert_allclose(clip.world_positions(), walk.world_positions(), rtol=0, atol=1e-12)
    # The plugin's writer through optiq.save_clip, read back by the plugin's loader.
    again = optiq.save_clip(clip, tmp_path / "again.mcsv")
    np.testing.assert_array_equal(optiq.load_clip(again).root_translation, walk.root_translation)


def test_example_loader_bad_row_names_file_and_line(data_dir, tmp_path, example_installed):
    path = tmp_path / "walk.mcsv"
    _walk_csvmotion(optiq.load_clip(data_dir / WALK).slice(0, 5), path)
    lines = path.read_text().splitlines()
    lines[-2] = lines[-2].rsplit(",", 1)[0]  # frame 3 loses its last value
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(optiq.ParseError, match=rf"{path}: line {len(lines) - 1}: 127 values, expected 128"):
        optiq.load(path)


def test_example_command_runs_in_the_cli(data_dir, tmp_path, example_installed):
    out = tmp_path / "walk.mcsv"
    result = run_optiq("csvmotion", "convert", str(data_dir / WALK), str(out))
    assert result.returncode == 0, result.stderr
    result = run_optiq("csvmotion", "info", str(out))
    assert result.stdout.strip() == f"{out}: 344 frames, 31 joints, 120 fps"


# --- a broken plugin -------------------------------------------------------------------------------------------
def test_broken_plugin_is_listed_with_its_error(broken_site, example_installed):
    table = run_optiq("plugins", "list", sites=(broken_site,))
    assert table.returncode == 0, table.stderr
    assert ["broken", "optiq-broken-plugin", "0.0.1", "error", "-"] in [ln.split() for ln in table.stdout.splitlines()]
    assert "  broken: error: ImportError: cannot import name 'register_loader' from 'optiq'" in table.stdout
    result = run_optiq("plugins", "list", "--json", sites=(broken_site,))
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["broken"]["status"] == "error"
    assert plugins["broken"]["error"].startswith("ImportError: cannot import name 'register_loader'")
    assert plugins["example"]["status"] == plugins["core"]["status"] == "ok"


def test_broken_plugin_never_breaks_other_commands(broken_site, data_dir, tmp_path, example_installed):
    info_help = run_optiq("data", "info", "--help", sites=(broken_site,))
    assert info_help.returncode == 0 and "Usage: optiq data info" in info_help.stdout, info_help.stderr
    ds = tmp_path / "walk.h5"
    convert = run_optiq("data", "convert", "--in", str(data_dir / WALK), "--out", str(ds), sites=(broken_site,))
    assert convert.returncode == 0 and ds.is_file(), convert.stderr
    load = run_optiq(sites=(broken_site,), code=f"import optiq; c = optiq.load_clip({str(data_dir / WALK)!r}); "
                                              "print(c.num_frames, c.num_joints)")
    assert (load.returncode, load.stdout.split()) == (0, ["344", "31"]), load.stderr
    out = tmp_path / "walk.mcsv"
    convert = run_optiq("csvmotion", "convert", str(data_dir / WALK), str(out), sites=(broken_site,))
    assert convert.returncode == 0 and out.is_file(), convert.stderr


def test_strict_plugins_reraises(broken_site):
    result = run_optiq("plugins", "list", sites=(broken_site,), env={"OPTIQ_STRICT_PLUGINS": "1"})
    assert result.returncode != 0
    assert "ImportError: cannot import name 'register_loader' from 'optiq'" in result.stderr
    assert "Traceback" in result.stderr  # re-raised as is, not turned into a one-line report


# --- OPTIQ_DISABLE_PLUGINS --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["example", "optiq_example_plugin"])
def test_disabled_plugin_registers_nothing(name, monkeypatch, example_installed):
    monkeypatch.setenv("OPTIQ_DISABLE_PLUGINS", f"something-else, {name}")
    manager = PluginManager()
    rec = manager.records["example"]
    assert (rec.status, rec.hooks, rec.capabilities) == ("disabled", [], [])
    assert "csvmotion" not in manager.registries["loader"] and "bvh" in manager.registries["loader"]


def test_disabled_plugin_in_the_cli(data_dir, tmp_path, example_installed):
    env = {"OPTIQ_DISABLE_PLUGINS": "example,broken"}
    result = run_optiq("plugins", "list", "--json", env=env)
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["example"]["status"] == "disabled" and plugins["example"]["capabilities"] == {}
    path = tmp_path / "walk.mcsv"
    _walk_csvmotion(optiq.load_clip(data_dir / WALK).slice(0, 3), path)
    load = run_optiq(env=env, code=f"import optiq; optiq.load({str(path)!r})")
    assert load.returncode == 1
    assert f"optiq.errors.PluginError: {path}: no loader for .mcsv; known suffixes: " in load.stderr
    gone = run_optiq("csvmotion", "info", str(path), env=env)
    assert gone.returncode == 2 and "No such command 'csvmotion'" in gone.stderr


# --- name clashes ----------------------------------------------------------------------------------------------
def test_clash_is_listed(clash_site):
    table = run_optiq("plugins", "list", sites=(clash_site,))
    assert table.returncode == 0, table.stderr
    assert "  core: loader bvh (.bvh) [write] [clash]" in table.stdout
    assert "  clash: loader 'bvh' is registered by core, clash; " in table.stdout
    data = json.loads(run_optiq("plugins", "list", "--json", sites=(clash_site,)).stdout)
    assert data["clashes"] == [{"kind": "loader", "name": "bvh", "plugins": ["core", "clash"]}]


def test_clashed_name_fails_clearly_and_module_attr_still_works(clash_site, data_dir, tmp_path, example_installed):
    bvh = str(data_dir / WALK)
    by_suffix = run_optiq("csvmotion", "convert", bvh, str(tmp_path / "x.mcsv"), sites=(clash_site,))
    assert by_suffix.returncode == 2
    assert by_suffix.stderr == ("optiq: error: loader 'bvh' is registered by several plugins (core, clash); disable "
                                "all but one with OPTIQ_DISABLE_PLUGINS or name a 'module:attr' target\n")
    assert not (tmp_path / "x.mcsv").exists()
    code = (f"import optiq\nfor how in ('bvh', 'optiq.loaders.bvh:load_bvh'):\n"
            f"    try: print(how, optiq.load_clip({bvh!r}, loader=how).num_frames)\n"
            f"    except optiq.PluginError as e: print(how, 'PluginError')\n")
    result = run_optiq(sites=(clash_site,), code=code)
    assert result.stdout.splitlines() == ["bvh PluginError", "optiq.loaders.bvh:load_bvh 344"], result.stderr
    fixed = run_optiq("csvmotion", "convert", bvh, str(tmp_path / "x.mcsv"), sites=(clash_site,),
                      env={"OPTIQ_DISABLE_PLUGINS": "clash"})
    assert fixed.returncode == 0, fixed.stderr


def test_two_distributions_claiming_one_plugin_name_are_both_refused(tmp_path, example_installed):
    install_dist(tmp_path, "optiq-impostor", "9.9", {"example": "optiq_example_plugin.plugin"})
    result = run_optiq("plugins", "list", "--json", sites=(tmp_path,))
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert "example" not in plugins
    for dist in ("optiq-impostor", "optiq-example-plugin"):
        rec = plugins[f"example ({dist})"]
        assert (rec["status"], rec["capabilities"]) == ("error", {})
        assert "plugin name 'example' is claimed by several distributions" in rec["error"]


def test_command_clash_fails_clearly(optiq_plugins):
    def a(cli):
        cli.add_command(click.Command("same", callback=lambda: click.echo("a")))

    def b(cli):
        cli.add_command(click.Command("same", callback=lambda: click.echo("b")))

    manager = optiq_plugins(others={"a": {"optiq_register_commands": a}, "b": {"optiq_register_commands": b}})
    group = click.Group("optiq")
    manager.add_commands(group)
    assert manager.clashes() == [{"kind": "command", "name": "same", "plugins": ["a", "b"]}]
    result = CliRunner().invoke(group, ["same"])
    assert isinstance(result.exception, PluginError)
    assert "command 'same' is registered by several plugins (a, b)" in str(result.exception)


def test_shared_groups_are_extended_not_clashed(optiq_plugins):
    """`optiq train` is core's: two packages adding `train model` and `train rl` extend it (before, a command
    name added by two plugins disabled both); two adding the same `train model` clash, one level down."""
    from optiq.cli.groups import shared_group

    def sub(name, text):
        def hook(cli):
            shared_group(cli, "train").add_command(click.Command(name, callback=lambda: click.echo(text)))
        return {"optiq_register_commands": hook}

    manager = optiq_plugins(others={"models": sub("model", "m"), "rl": sub("rl", "r"), "other": sub("model", "o")})
    group = click.Group("optiq")
    group.add_command(click.Group("train"))
    manager.add_commands(group)
    assert manager.clashes() == [{"kind": "command", "name": "train model", "plugins": ["models", "other"]}]
    assert CliRunner().invoke(group, ["train", "rl"]).output == "r\n"
    result = CliRunner().invoke(group, ["train", "model"])
    assert "command 'train model' is registered by several plugins (models, other)" in str(result.exception)


# --- lazy targets, module:attr, unknown names ------------------------------------------------------------------
def test_data_cli_reads_plugin_formats_and_module_attr_loaders(data_dir, tmp_path, example_installed):
    mcsv = tmp_path / "walk.mcsv"
    _walk_csvmotion(optiq.load_clip(data_dir / WALK), mcsv)
    runs = {
        "by_suffix.parquet": ("--in", str(mcsv), "-j", "2"),  # worker processes discover the plugin too
        "by_target.h5": ("--in", str(data_dir / WALK), "--loader", "optiq.loaders.bvh:load_bvh"),
        "plugin_target.h5": ("--in", str(mcsv), "--loader", "optiq_example_plugin.csvmotion:load_csvmotion"),
    }
    for out, args in runs.items():
        result = run_optiq("data", "convert", *args, "--out", str(tmp_path / out))
        assert result.returncode == 0, result.stderr
        info = json.loads(run_optiq("data", "info", str(tmp_path / out), "--json").stdout)
        assert (info["num_clips"], info["num_frames"], info["skeleton"]["num_joints"]) == (1, 344, 31)
    bad = run_optiq("data", "convert", "--in", str(mcsv), "--out", str(tmp_path / "x.h5"), "--loader", "transformer")
    assert bad.returncode == 2 and not (tmp_path / "x.h5").exists()
    assert bad.stderr.startswith("optiq: error: unknown loader 'transformer'; installed: amp_npy, asf_amc, bvh, "
                                 "c3d, coco_keypoints, csvmotion, ") and bad.stderr.count("\n") == 1


def test_module_attr_works_where_a_name_does(data_dir):
    by_name = optiq.load_clip(data_dir / WALK, loader="bvh")
    by_target = optiq.load_clip(data_dir / WALK, loader="optiq.loaders.bvh:load_bvh")
    np.testing.assert_array_equal(by_target.rotations, by_name.rotations)
    with pytest.raises(PluginError, match=r"cannot import 'optiq.loaders.nothing_here'"):
        optiq.load(data_dir / WALK, loader="optiq.loaders.nothing_here:load")
    with pytest.raises(PluginError, match=r"module 'optiq.loaders.bvh' has no attribute 'load_nothing'"):
        optiq.load(data_dir / WALK, loader="optiq.loaders.bvh:load_nothing")


def test_targets_are_imported_on_use_only(optiq_plugins):
    def optiq_register_models(register):
        register("ghost", "optiq_module_that_does_not_exist:Model")

    manager = optiq_plugins({"optiq_register_models": optiq_register_models})
    assert manager.records["throwaway"].status == "ok"
    with pytest.raises(PluginError, match=r"model 'ghost' \(plugin throwaway\): cannot import "
                                          r"'optiq_module_that_does_not_exist'"):
        registry("model").load("ghost")


def test_unknown_names_list_the_known_ones_and_the_extra(optiq_plugins, tmp_path):
    def optiq_register_models(register):
        register("mlp", "collections:OrderedDict")

    optiq_plugins({"optiq_register_models": optiq_register_models})
    with pytest.raises(PluginError) as err:
        registry("model").get("transformer")
    assert str(err.value) == "unknown model 'transformer'; installed: mlp. Try: pip install \"optiq[ml]\""
    fbx = tmp_path / "walk.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00")
    with pytest.raises(PluginError) as err:
        optiq.load(fbx)
    assert str(err.value) == f'{fbx}: no loader for .fbx; install "optiq[fbx]"'
    with pytest.raises(PluginError, match=r"unknown loader 'trc'; installed: amp_npy, asf_amc, bvh, c3d, coco_keypoints, deepmimic, "):
        optiq.load(fbx, loader="trc")


# --- plugin manager rules, through throw-away plugins ----------------------------------------------------------
def test_a_failing_hook_makes_the_plugin_contribute_nothing(optiq_plugins):
    def loaders(register):
        register("half", "optiq.loaders.bvh:load_bvh", suffixes=(".half",))

    def renderers(register):
        raise RuntimeError("renderer backend missing")

    manager = optiq_plugins({"optiq_register_loaders": loaders, "optiq_register_renderers": renderers})
    rec = manager.records["throwaway"]
    assert (rec.status, rec.error) == ("error", "optiq_register_renderers: RuntimeError: renderer backend missing")
    assert "half" not in manager.registries["loader"] and "bvh" in manager.registries["loader"]


def test_unknown_hook_and_bad_arguments_are_errors(optiq_plugins):
    from optiq.testing import make_plugin  # imported here: pytest_plugins above imports the module first

    with pytest.raises(ValueError, match="unknown hook"):
        make_plugin({"optiq_register_loader": lambda register: None})
    typo = make_plugin({})
    typo.optiq_register_loader = optiq.hookimpl(lambda register: None)  # a typo: "loader" for "loaders"
    bad_args = make_plugin({"optiq_register_models": lambda registrar: None})
    manager = optiq_plugins(others={"typo": typo, "bad_args": bad_args})
    assert manager.records["typo"].status == "error"
    assert "unknown hook(s) optiq_register_loader" in manager.records["typo"].error
    assert manager.records["bad_args"].status == "error"
    assert "registrar" in manager.records["bad_args"].error


def test_strict_mode_raises_in_process(optiq_plugins, monkeypatch):
    monkeypatch.setenv("OPTIQ_STRICT_PLUGINS", "1")

    def renderers(register):
        raise RuntimeError("renderer backend missing")

    with pytest.raises(RuntimeError, match="renderer backend missing"):
        optiq_plugins({"optiq_register_renderers": renderers})


# --- one test per hook: it is called, and what it registers lands in its registry ------------------------------
def test_hook_optiq_register_loaders(optiq_plugins, data_dir, tmp_path):
    def optiq_register_loaders(register):
        register("bvh-copy", "optiq.loaders.bvh:load_bvh", suffixes=("BVHCOPY",))

    manager = optiq_plugins({"optiq_register_loaders": optiq_register_loaders})
    cap = manager.registries["loader"].get("bvh-copy")
    assert (cap.plugin, cap.meta["suffixes"]) == ("throwaway", (".bvhcopy",))
    path = tmp_path / "walk.bvhcopy"
    shutil.copy(data_dir / WALK, path)
    assert optiq.io.loader_for(path) is cap
    assert optiq.load_clip(path).num_frames == 344


def test_hook_optiq_register_formats(optiq_plugins):
    from optiq.registry import resolve_target

    def optiq_register_formats(register):
        register("npz", "numpy:savez", suffixes=(".npz",))

    manager = optiq_plugins({"optiq_register_formats": optiq_register_formats})
    assert manager.records["throwaway"].hooks == ["optiq_register_formats"]
    assert manager.registries["format"].load("npz") is resolve_target("numpy:savez") is np.savez
    assert manager.registries["format"].get("npz").meta["suffixes"] == (".npz",)
    assert {"parquet", "hdf5", "npz"} <= set(manager.registries["format"].names())
    assert "npz" not in manager.registries["loader"]


def _check_named_registrar(optiq_plugins, kind: str) -> None:
    """The model, adapter and renderer hooks: called once, the registration lands in its own registry only."""
    hook = f"optiq_register_{kind}s"
    seen = []

    def impl(register):
        seen.append(hook)
        register(f"my-{kind}", "collections:OrderedDict", description=f"a {kind}", extra_info=3)

    manager = optiq_plugins({hook: impl})
    assert seen == [hook] and manager.records["throwaway"].hooks == [hook]
    cap = registry(kind).get(f"my-{kind}")
    assert (cap.plugin, cap.description, cap.meta) == ("throwaway", f"a {kind}", {"extra_info": 3})
    from collections import OrderedDict

    assert registry(kind).load(f"my-{kind}") is OrderedDict
    assert all(f"my-{kind}" not in reg for k, reg in manager.registries.items() if k != kind)


def test_hook_optiq_register_models(optiq_plugins):
    _check_named_registrar(optiq_plugins, "model")


def test_hook_optiq_register_adapters(optiq_plugins):
    _check_named_registrar(optiq_plugins, "adapter")


def test_hook_optiq_register_renderers(optiq_plugins, data_dir, tmp_path, example_installed):
    _check_named_registrar(optiq_plugins, "renderer")
    # And the example plugin's real renderer, found through the installed plugin's registration.
    render = get_manager(reload=True).registries["renderer"].load("positions-csv")
    clip = optiq.load_clip(data_dir / WALK).slice(0, 10)
    render(clip, tmp_path / "pos.csv")
    table = np.loadtxt(tmp_path / "pos.csv", delimiter=",", skiprows=1)
    assert table.shape == (10, 1 + 31 * 3)
    np.testing.assert_allclose(table[:, 1:].reshape(10, 31, 3), clip.world_positions(), atol=1e-8)


def test_hook_optiq_register_commands(optiq_plugins):
    def optiq_register_commands(cli):
        @cli.command("hello")
        @click.argument("who")
        def hello(who):
            """Say hello."""
            click.echo(f"hello {who}")

    manager = optiq_plugins({"optiq_register_commands": optiq_register_commands})
    group = click.Group("optiq", commands={"data": click.Group("data")})
    manager.add_commands(group)
    assert manager.records["throwaway"].hooks == ["optiq_register_commands"]
    assert [c.name for c in manager.records["throwaway"].capabilities] == ["hello"]
    assert CliRunner().invoke(group, ["hello", "world"]).output == "hello world\n"
    assert set(group.commands) == {"data", "hello"}
