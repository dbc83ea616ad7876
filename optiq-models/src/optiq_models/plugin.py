"""Hook implementations only: models by name as lazy "module:Class" targets, and the commands (``optiq model``,
``optiq train model``, ``optiq eval model``, ``optiq generate``, ``optiq tokens``). Importing this module imports neither torch nor
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
    register("vqvae", "optiq_models.nets.vqvae:VQVAE", kind="tokenizer",
             description="motion VQ-VAE: windows -> one code per 4 frames (residual codebooks optional) -> windows")


@optiq.hookimpl
def optiq_register_commands(cli):
    from optiq_models.cli import model
    from optiq_models.cli_tokens import tokens
    from optiq_models.cli_train import add_commands

    cli.add_command(model)
    cli.add_command(tokens)
    add_commands(cli)
