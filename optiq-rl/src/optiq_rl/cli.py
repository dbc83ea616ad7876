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


@rl.command("retarget")
@click.option("--in", "source", required=True, type=click.Path(dir_okay=False),
              help="A dataset (.parquet, .h5) or a motion file (.bvh, .fbx, DeepMimic .txt, ...).")
@click.option("--character", "char_name", required=True,
              help="A registered character (deepmimic), an MJCF (.xml) or a DeepMimic character file.")
@click.option("--map", "map_path", default=None,
              help="A joint map (optiq JSON, BvhToDeepMimic settings, IsaacGymEnvs retarget config) or a built-in "
                   "map's name; none: the clip plays directly (same topology).")
@click.option("--clip", "clips", multiple=True, help="A clip (name or index) to retarget; repeat; default all.")
@click.option("--frames", default=None, help="START:STOP, the frames to keep (e.g. 1: drops a T-pose frame 0).")
@click.option("--calibration", type=int, default=0, show_default=True,
              help="The source frame that stands as the character stands at rest (scale, heading, rotations).")
@click.option("--ground", type=click.Choice(["clip", "frame", "none"]), default="clip", show_default=True,
              help="clip: lowest foot point over the clip at z=0; frame: each frame lifted out of the ground.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The reference dataset to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurements as JSON.")
def retarget_cmd(source: str, char_name: str, map_path: str | None, clips: tuple[str, ...], frames: str | None,
                 calibration: int, ground: str, out: str, as_json: bool) -> None:
    """Retarget motion onto a character: a reference dataset on the character's skeleton with qpos and qvel.

    With --map, inverse kinematics (mink) per frame; without, the clip must have the character's joints. Prints
    per clip the end-effector error (mm, mean and max), joint-limit violations, ground penetration and frames/s.
    """
    from optiq.atomic import check_output_path

    from .characters import character
    from .ik import IKOptions
    from .jointmap import load_joint_map
    from .retarget import retarget_clip, source_clips, write_reference

    check_output_path(out, suffixes=(".parquet", ".h5", ".hdf5"), inputs=[source])
    char = character(char_name)
    joint_map = load_joint_map(map_path) if map_path else None
    span = _frames(frames)
    refs = [retarget_clip(c, char, joint_map, IKOptions(ground=ground), calibration=calibration, frames=span)
            for c in source_clips(source, list(clips) or None)]
    write_reference(out, refs)
    if as_json:
        click.echo(json.dumps({r.clip.name: r.metrics for r in refs}, indent=2))
        return
    for r in refs:
        m = r.metrics
        click.echo(f"{r.clip.name}: {m['frames']} frames on {char.name}: error mean {m['mean_mm']:.1f} mm, max "
                   f"{m['max_mm']:.1f} mm; limit violations {m['limit_violations']} (max "
                   f"{m['limit_violation_max_rad']:.3f} rad); penetration {m['penetration_mm']:.1f} mm; "
                   f"{m['frames_per_second']:.0f} frames/s")
        for joint, e in m["end_effectors"].items():
            if e["end_effector"]:
                click.echo(f"  {joint} -> {e['body']}: mean {e['mean_mm']:.1f} mm, max {e['max_mm']:.1f} mm")
    click.echo(f"{out}: {len(refs)} clip(s), qpos {refs[0].qpos.shape[1]} and qvel {refs[0].qvel.shape[1]} per frame")


def _frames(text: str | None) -> slice | None:
    """``START:STOP`` (either may be empty) as a slice; a usage error otherwise."""
    if text is None:
        return None
    try:
        start, stop = (int(x) if x.strip() else None for x in text.split(":"))
    except ValueError:
        raise click.BadParameter(f"expected START:STOP (e.g. 1: or 0:300), got {text!r}",
                                 param_hint="--frames") from None
    return slice(start, stop)


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
