"""``optiq rl``: characters (build one, describe one), policy export; and ``optiq train rl`` and ``optiq eval rl``
(attached to core's shared groups by ``add_commands``). Imports only click at module level; mujoco, torch and SB3
are imported when a command runs, so ``optiq --help`` and ``optiq plugins list`` stay light."""

from __future__ import annotations

import json
import math

import click
from optiq.cli.params import PositiveFloat


@click.group()
def rl() -> None:
    """Simulated characters, reference motion on them, and export of trained policies (optiq-rl)."""


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
@click.option("--fps", type=PositiveFloat(1000.0, "a motion capture rate"), default=None,
              help="Resample the source to this frame rate first (slerp): an env's control rate, for a motion model "
                   "that an RL adapter serves (Humanoid-v5: 66.6667). --frames and --calibration count its frames.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The reference dataset to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurements as JSON.")
def retarget_cmd(source: str, char_name: str, map_path: str | None, clips: tuple[str, ...], frames: str | None,
                 calibration: int, ground: str, fps: float | None, out: str, as_json: bool) -> None:
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
    refs = [retarget_clip(c if fps is None else c.resample(fps), char, joint_map, IKOptions(ground=ground),
                          calibration=calibration, frames=span)
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


@rl.command("play")
@click.option("--in", "source", required=True, type=click.Path(dir_okay=False),
              help="A reference dataset (optiq rl retarget), or a clip of the character's skeleton (DeepMimic .txt, "
                   "dataset, BVH).")
@click.option("--clip", default=None, help="The clip (name or index); default the first.")
@click.option("--character", "char_name", default=None,
              help="A registered character or an MJCF (.xml); default the one a reference dataset's clip is "
                   "labelled with, else deepmimic.")
@click.option("--frames", default=None, help="START:STOP, the frames to draw (e.g. 0:60).")
@click.option("--size", default="640x480", show_default=True, help="Video size WIDTHxHEIGHT in pixels (even).")
@click.option("--shadows", is_flag=True, help="Draw shadows and reflections (about 3x slower with software GL).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The video to write (.mp4).")
@click.pass_context
def play_cmd(ctx: click.Context, source: str, clip: str | None, char_name: str | None, frames: str | None, size: str,
             shadows: bool, out: str) -> None:
    """Video of a reference motion on a character, no policy and no physics: each frame's pose set (the stored
    qpos of a reference dataset, or the clip played directly), drawn by MuJoCo with the camera following the
    root. One video frame per clip frame, at the clip's rate."""
    from .render import RenderError, render_reference

    try:
        from optiq_viz.video import parse_size
    except ImportError:
        raise RenderError("videos are encoded by optiq-viz: pip install optiq-viz") from None

    video, char, ref = render_reference(source, out, clip=clip, character=char_name, frames=_frames(frames),
                                        size=parse_size(size), shadows=shadows, progress=_progress(ctx))
    click.echo(f"wrote {video.path}: {video.frames} frames at {video.fps} fps ({float(video.fps):g}), "
               f"{video.width}x{video.height}; {ref.name} on {char.name}")


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
            "fall_bodies": list(char.fall_bodies), "forward_rad": float(getattr(char, "forward", 0.0))}


def _summary(char) -> str:
    m = char.model()
    return (f"{len(char.joint_names)} joints, {m.nu} motors, {m.body_mass.sum():.1f} kg, nq {m.nq}, nv {m.nv}, "
            f"faces {math.degrees(getattr(char, 'forward', 0.0)):.0f} deg from +x at rest")


# --- training, evaluation, export (train.py, evaluate.py, export.py) -------------------------------------------
@click.command("rl", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--env", "env_id", help="Gymnasium id: optiq/Track-v0, optiq/Locomotion-v0, Humanoid-v5, ...")
@click.option("--config", metavar="FILE|NAME",
              help="YAML config: a file, or a shipped one by name (ppo_humanoid, track_deepmimic_walk, ...).")
@click.option("--reference", help="Track-v0: the reference to track (a clip file or a reference dataset).")
@click.option("--clip", "clips", multiple=True, help="Track-v0: a clip of the reference dataset; repeat.")
@click.option("--character", "char_name", help="optiq envs: the character (deepmimic, body.xml, ...).")
@click.option("--total-steps", type=click.IntRange(min=1), help="Env steps of the whole run (all envs).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The policy file (.zip).")
@click.option("--algo", type=click.Choice(["ppo", "sac"]), help="Algorithm (default ppo).")
@click.option("--seed", type=int, help="Seed of envs, networks and sampling.")
@click.option("--n-envs", type=click.IntRange(min=1), help="Envs stepped in parallel.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint beside --out (step count kept).")
@click.option("--pretrained", type=click.Path(dir_okay=False),
              help="A motion model of optiq train model (.pt) to start from (docs/rl.md, Adapters).")
@click.option("--adapter-mode", type=click.Choice(["scratch", "feature", "prior", "hint", "style"]),
              help="With --pretrained: scratch (its encoder's architecture, fresh weights), feature (its encoder "
                   "as features extractor), prior (its next pose as the base of residual PD targets), hint (its "
                   "next pose as one more input of the policy) or style (a reward for motion it predicts well). "
                   "Default feature.")
@click.option("--freeze-steps", type=click.IntRange(min=0), help="With --pretrained: env steps with the encoder frozen.")
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE",
              help="With --pretrained: a label the motion model is conditioned on (movement=run); repeat.")
@click.pass_context
def train_rl(ctx: click.Context, env_id, config, reference, clips, char_name, total_steps, out, algo, seed, n_envs,
             resume, pretrained, adapter_mode, freeze_steps, labels) -> None:
    """Train a policy with Stable-Baselines3 (PPO or SAC). Without --config the env's shipped config is used
    (Track-v0: track_deepmimic_walk, Locomotion-v0: locomotion_deepmimic, Humanoid-v5: ppo_humanoid or
    sac_humanoid). Any config key can follow as --KEY VALUE (e.g. --algo_kwargs.learning_rate 1e-4,
    --env_kwargs.control pd, --adapter.encoder_lr_scale 0.1); an unknown key is an error naming it."""
    from optiq.cli.params import parse_labels
    from optiq.config import parse_overrides

    from .train import default_config, load_config, summary_line, train

    named = {"env": env_id, "algo": algo, "seed": seed, "n_envs": n_envs, "total_steps": total_steps}
    cfg = load_config(config or default_config(env_id, algo), parse_overrides(ctx.args))
    cfg = cfg.updated({k: v for k, v in named.items() if v is not None}, "command line")
    env_kwargs = {"reference": reference, "clips": list(clips) or None, "character": char_name}
    cfg = cfg.updated({f"env_kwargs.{k}": v for k, v in env_kwargs.items() if v is not None}, "command line")
    adapter = {"pretrained": pretrained, "mode": adapter_mode, "freeze_steps": freeze_steps,
               "labels": parse_labels(labels)}
    cfg = cfg.updated({f"adapter.{k}": v for k, v in adapter.items() if v is not None}, "command line")
    result = train(cfg, out, resume=resume, progress=_progress(ctx))
    click.echo(summary_line(result))


@click.command("rl")
@click.option("--policy", required=True, type=click.Path(dir_okay=False), help="A policy file of optiq train rl.")
@click.option("--env", "env_id", help="Run it in this env instead of its own (same observation and action shape).")
@click.option("--episodes", default=20, show_default=True, type=click.IntRange(min=1), help="Episodes to run.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the first episode (then +1, ...).")
@click.option("--stochastic", is_flag=True, help="Sample actions (default: the deterministic action).")
@click.option("--baseline", is_flag=True, help="Also run the zero action (PD held at the reference) as a peer.")
@click.option("--curve", "curves", multiple=True, type=click.Path(dir_okay=False),
              help="Policy files (other seeds) whose training curves join the learning-curve section; repeat. "
                   "Default: the policy's own.")
@click.option("--out", type=click.Path(dir_okay=False), help="Report JSON (docs/viz.md, version 2).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_rl(policy, env_id, episodes, seed, stochastic, baseline, curves, out, as_json) -> None:
    """Evaluate a policy: return, episode length, falls; tracking (PHC/UHC protocol): success, global and
    root-relative MPJPE, acceleration error; locomotion: velocity error, energy."""
    from .evaluate import evaluate

    report = evaluate(policy, env=env_id, episodes=episodes, seed=seed, deterministic=not stochastic,
                      baseline=baseline, curves=list(curves) or None, out=out)
    if as_json:
        click.echo(json.dumps(report["rl"], indent=2))
        return
    for name, m in report["rl"]["policies"].items():
        cells = ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, (int, float)))
        click.echo(f"{name}: {cells}")
    if out:
        click.echo(f"{out}: report version {report['version']}")


@rl.command("export")
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True,
              help="ONNX (.onnx, checked with onnxruntime) or TorchScript (.pt).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output file (.onnx or .pt).")
def export_cmd(policy: str, fmt: str, out: str) -> None:
    """Export the deterministic actor of POLICY with its observation normalisation folded in: ``action =
    f(raw observation [B, D])``, no SB3 needed. Checked against SB3's predict before it is written (1e-5)."""
    from .export import export_policy

    result = export_policy(policy, out, fmt)
    click.echo(f"{out}: {fmt} actor [B, {result['observation_dim']}] -> [B, {result['action_dim']}]; max |export - "
               f"SB3| = {result['max_diff']:.2g}; {result['latency_us']:.0f} us per step (batch 1, CPU)")


def _progress(ctx: click.Context) -> bool:
    return not (ctx.find_root().obj or {}).get("quiet", False)


def add_commands(cli: click.Group) -> None:
    """Attach ``optiq train rl`` and ``optiq eval rl`` to the shared groups of ``cli``."""
    from optiq.cli.groups import shared_group

    shared_group(cli, "train").add_command(train_rl)
    shared_group(cli, "eval").add_command(eval_rl)
