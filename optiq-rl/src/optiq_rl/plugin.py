"""Hook implementations only: the built-in characters (adapters of kind ``character``) and the envs as lazy
"module:attr" targets, the MuJoCo video renderer, and the commands (``optiq rl``, ``optiq train rl``,
``optiq eval rl``). Importing this module imports neither mujoco nor torch."""

from __future__ import annotations

import optiq


@optiq.hookimpl
def optiq_register_adapters(register):
    register("deepmimic", "optiq_rl.characters.deepmimic:builtin_deepmimic", kind="character",
             description="DeepMimic humanoid3d: 15 joints (ball, knee/elbow hinges, fixed wrists), 28 motors, "
                         "its published masses, limits, torque limits and PD gains")
    register("optiq/Track-v0", "optiq_rl.envs.track:TrackEnv", kind="env",
             description="Gymnasium env: track reference clips (PD/SPD/torque control, RSI, DeepMimic or MimicKit "
                         "reward, early termination)")
    register("optiq/Locomotion-v0", "optiq_rl.envs.locomotion:LocomotionEnv", kind="env",
             description="Gymnasium env: reach a target velocity and heading (alive, energy, smoothness terms)")
    # RL from a pretrained motion model (optiq train rl --pretrained, --adapter-mode scratch|feature|prior).
    register("motion-history", "optiq_rl.adapters:MotionAdapter", kind="observation",
             description="observation adapter: the character's own optiq.features rows (the motion model's "
                         "input) beside the env's observation; prior mode: the model's next pose as PD base")
    register("motion-encoder", "optiq_rl.adapters:MotionExtractor", kind="features_extractor",
             description="SB3 features extractor: a motion model's encoder over the history, its normalisation "
                         "fixed inside")
    register("motion-policy", "optiq_rl.adapters:MotionPolicy", kind="policy",
             description="SB3 multi-input actor-critic with the encoder in its own learning-rate group")
    register("torque-pd", "optiq_rl.adapters:TorquePD", kind="action",
             description="residual PD targets -> torques (SPD per control step) for MuJoCo envs that take torques")


@optiq.hookimpl
def optiq_register_renderers(register):
    register("mujoco", "optiq_rl.render:render_policy", suffixes=(".mp4",), inputs=("policy",),
             description="MP4 of a policy acting, drawn by MuJoCo's offscreen renderer (EGL/OSMesa), camera "
                         "following the character, the reference as a ghost; optiq viz video --policy")


@optiq.hookimpl
def optiq_register_commands(cli):
    from optiq_rl.cli import add_commands, rl

    cli.add_command(rl)
    add_commands(cli)
