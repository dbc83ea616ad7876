"""``optiq rl``: characters (build one, describe one). Imports only click at module level; mujoco is imported
when a command runs, so ``optiq --help`` and ``optiq plugins list`` stay light."""

from __future__ import annotations

import json

import click


@click.group()
def rl() -> None:
    """Simulated characters and reference motion on them (optiq-rl)."""


@rl.command("character")
@click.option("--from", "dataset", type=click.Path(dir_okay=False),
              help="A dataset (.parquet, .h5): a body for its skeleton.")
@click.option("--deepmimic", "deepmimic", type=click.Path(dir_okay=False),
              help="A DeepMimic character file (humanoid3d_character.txt): that humanoid.")
@click.option("--clip", default="0", show_default=True,
              help="With --from: the clip (name or index) whose performer's bone lengths the body takes.")
@click.option("--total-mass", type=click.FloatRange(min=0, min_open=True), default=70.0, show_default=True,
              help="With --from: the body's mass in kg, spread over the bones by volume.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The MJCF to write (.xml).")
def character_cmd(dataset: str | None, deepmimic: str | None, clip: str, total_mass: float, out: str) -> None:
    """Build a character's MJCF: from a dataset's skeleton, or from a DeepMimic character file.

    The MJCF carries the optiq joint names and PD gains in custom fields, so ``--character body.xml`` and
    ``character("body.xml")`` read it back whole (docs/rl.md).
    """
    from optiq.atomic import check_output_path

    if (dataset is None) == (deepmimic is None):
        raise click.UsageError("give one of --from DATASET or --deepmimic FILE")
    check_output_path(out, suffixes=(".xml",), inputs=[p for p in (dataset, deepmimic) if p])
    if dataset is not None:
        from .characters.skeleton import BodyOptions, character_from_dataset

        which = int(clip) if clip.isdigit() else clip
        char = character_from_dataset(dataset, which, BodyOptions(total_mass=total_mass))
    else:
        from .characters.deepmimic import deepmimic_character

        char = deepmimic_character(deepmimic)
    char.save(out)
    click.echo(f"{out}: {_summary(char)}")


@rl.command("info")
@click.argument("name_or_path")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_cmd(name_or_path: str, as_json: bool) -> None:
    """Describe a character: a registered name (deepmimic), an MJCF (.xml) or a DeepMimic character file."""
    from .characters import character

    char = character(name_or_path)
    if as_json:
        click.echo(json.dumps(describe(char), indent=2))
        return
    click.echo(f"{char.name}: {_summary(char)}")
    for name, kp, kd, limit in zip(char.actuator_names(), char.kp, char.kd, char.torque_limits, strict=True):
        click.echo(f"  {name}: kp {kp:g}, kd {kd:g}, torque limit {limit:g} N m")


def describe(char) -> dict:
    """The JSON-able description ``optiq rl info --json`` prints."""
    m = char.model()
    return {"name": char.name, "source": char.source, "joints": list(char.joint_names),
            "bodies": list(char.body_names), "nq": int(m.nq), "nv": int(m.nv), "nu": int(m.nu),
            "mass_kg": float(m.body_mass.sum()), "actuators": char.actuator_names(), "kp": char.kp.tolist(),
            "kd": char.kd.tolist(), "torque_limits": char.torque_limits.tolist(),
            "fall_bodies": list(char.fall_bodies)}


def _summary(char) -> str:
    m = char.model()
    return (f"{len(char.joint_names)} joints, {m.nu} motors, {m.body_mass.sum():.1f} kg, nq {m.nq}, nv {m.nv}")
