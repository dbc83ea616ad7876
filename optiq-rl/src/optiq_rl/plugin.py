"""Hook implementations only: the built-in characters (adapters of kind ``character``) as lazy "module:attr"
targets, and the ``optiq rl`` command group. Importing this module imports neither mujoco nor torch."""

from __future__ import annotations

import optiq


@optiq.hookimpl
def optiq_register_adapters(register):
    register("deepmimic", "optiq_rl.characters.deepmimic:builtin_deepmimic", kind="character",
             description="DeepMimic humanoid3d: 15 joints (ball, knee/elbow hinges, fixed wrists), 28 motors, "
                         "its published masses, limits, torque limits and PD gains")


@optiq.hookimpl
def optiq_register_commands(cli):
    from optiq_rl.cli import rl

    cli.add_command(rl)
