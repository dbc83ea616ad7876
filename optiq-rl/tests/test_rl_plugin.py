"""optiq-rl as a plugin: the built-in character (an adapter of kind ``character``) and the ``rl`` command in
``optiq plugins list``, without importing mujoco or torch."""

from __future__ import annotations

import json
import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_listed_without_importing_mujoco():
    code = ("import sys, json; from optiq.cli.main import build_cli\n"
            "cli = build_cli()\n"
            "cli.main(['plugins', 'list', '--json'], standalone_mode=False)\n"
            "cli.main(['rl', '--help'], standalone_mode=False)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('mujoco', 'torch', 'gymnasium'))))")
    result = run(code)
    assert result.returncode == 0, result.stderr
    listing, _, rest = result.stdout.partition("\nUsage:")
    plugins = {p["name"]: p for p in json.loads(listing)["plugins"]}
    rl = plugins["rl"]
    assert (rl["distribution"], rl["status"]) == ("optiq-rl", "ok")
    assert rl["hooks"] == ["optiq_register_adapters", "optiq_register_commands", "optiq_register_renderers"]
    adapters = {a["name"]: a for a in rl["capabilities"]["adapters"]}
    deepmimic = adapters.pop("deepmimic")
    assert (deepmimic["name"], deepmimic["kind"], deepmimic["target"]) == (
        "deepmimic", "character", "optiq_rl.characters.deepmimic:builtin_deepmimic")
    assert {(a["name"], a["kind"], a["target"]) for a in adapters.values()} == {
        ("optiq/Track-v0", "env", "optiq_rl.envs.track:TrackEnv"),
        ("optiq/Locomotion-v0", "env", "optiq_rl.envs.locomotion:LocomotionEnv"),
        ("motion-history", "observation", "optiq_rl.adapters:MotionAdapter"),
        ("motion-encoder", "features_extractor", "optiq_rl.adapters:MotionExtractor"),
        ("motion-policy", "policy", "optiq_rl.adapters:MotionPolicy"),
        ("torque-pd", "action", "optiq_rl.adapters:TorquePD")}
    assert [c["name"] for c in rl["capabilities"]["commands"]] == ["rl", "train rl", "eval rl"]
    assert [(r["name"], r["target"]) for r in rl["capabilities"]["renderers"]] == [
        ("mujoco", "optiq_rl.render:render_policy")]
    assert json.loads(rest.strip().splitlines()[-1]) == []
