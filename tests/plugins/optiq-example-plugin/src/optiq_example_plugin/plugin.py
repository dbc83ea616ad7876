"""Hook implementations only: names, suffixes and lazy "module:attr" targets; no heavy imports."""

from __future__ import annotations

import optiq


@optiq.hookimpl
def optiq_register_loaders(register):
    register("csvmotion", "optiq_example_plugin.csvmotion:load_csvmotion", suffixes=(".mcsv",),
             write="optiq_example_plugin.csvmotion:write_csvmotion",
             sniff="optiq_example_plugin.csvmotion:sniff_csvmotion",
             description="csvmotion: one CSV row per frame, skeleton in '#' header lines (metres, Z up, wxyz)")


@optiq.hookimpl
def optiq_register_renderers(register):
    register("positions-csv", "optiq_example_plugin.render:render_positions_csv", suffixes=(".csv",),
             description="world joint positions per frame as CSV (metres)")


@optiq.hookimpl
def optiq_register_models(register):
    # A lazy target: listing plugins never imports torch; `optiq train model --arch gru` imports it when used.
    register("gru", "optiq_example_plugin.gru:GRUModel", kind="next_state",
             description="GRU next-state model (example third-party model; needs optiq-models)")


@optiq.hookimpl
def optiq_register_commands(cli):
    from .cli import csvmotion

    cli.add_command(csvmotion)
