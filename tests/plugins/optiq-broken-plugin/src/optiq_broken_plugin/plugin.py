"""Fails at import: ``optiq.register_loader`` never existed (plugins register through hooks)."""

from optiq import register_loader

register_loader("broken", "optiq_broken_plugin.plugin:load")
