"""Hook implementations only: the built-in characters (adapters of kind ``character``) as lazy "module:attr"
targets, and the ``optiq rl`` command group. Importing this module imports neither mujoco nor torch."""

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


@optiq.hookimpl
def optiq_register_commands(cli):
    from optiq_rl.cli import rl

    cli.add_command(rl)
