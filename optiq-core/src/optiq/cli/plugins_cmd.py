"""``optiq plugins list``: every plugin, its distribution, version, status, hooks and capabilities."""

from __future__ import annotations

import json

import click

from ..plugins import get_manager


@click.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_plugins(as_json: bool) -> None:
    """List plugins (entry-point group 'optiq') and what each registered.

    Listing imports only each plugin's plugin module, never the modules its capabilities point to.
    """
    info = get_manager().info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "HOOKS")]
    for p in info["plugins"]:
        hooks = ",".join(h.replace("optiq_register_", "") for h in p["hooks"]) or "-"
        rows.append((p["name"], p["distribution"], p["version"], p["status"], hooks))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    clashed = {(c["kind"], c["name"]) for c in info["clashes"]}
    for p in info["plugins"]:
        if p["error"]:
            click.echo(f"  {p['name']}: error: {p['error']}")
        for kind, caps in p["capabilities"].items():
            for c in caps:
                extra = f" ({' '.join(c['suffixes'])})" if c.get("suffixes") else " (folder)" if c.get("folder") else ""
                writes = " [write]" if c.get("write") else ""
                clash = " [clash]" if (kind[:-1], c["name"]) in clashed else ""
                click.echo(f"  {p['name']}: {kind[:-1]} {c['name']}{extra}{writes}{clash}")
    for c in info["clashes"]:
        click.echo(f"  clash: {c['kind']} {c['name']!r} is registered by {', '.join(c['plugins'])}; "
                   f"using it fails until all but one are disabled (OPTIQ_DISABLE_PLUGINS)")
