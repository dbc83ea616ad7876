"""Hook implementations only: models by name as lazy "module:Class" targets, and the commands (``optiq model``,
``optiq train model``, ``optiq eval model``, ``optiq generate``). Importing this module imports neither torch nor
the networks; the command modules import only click at module level."""

from __future__ import annotations

import optiq


@optiq.hookimpl
def optiq_register_models(register):
    register("mlp", "optiq_models.nets.mlp:MLP", kind="next_state",
             description="last k frames -> next frame (residual), FiLM label conditioning")
    register("transformer", "optiq_models.nets.transformer:Transformer", kind="next_state",
             description="causal decoder over a frame window, next frame at every position, FiLM labels")
    register("unet", "optiq_models.nets.unet:UNet", kind="next_state",
             description="1D temporal U-Net: next chunk of frames from a past window, rolled out chunk by chunk")


@optiq.hookimpl
def optiq_register_commands(cli):
    from optiq_models.cli import model
    from optiq_models.cli_train import add_commands

    cli.add_command(model)
    add_commands(cli)
