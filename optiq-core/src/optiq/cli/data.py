"""``optiq data``: convert, label, inspect and export datasets."""

from __future__ import annotations

import click


@click.group()
def data() -> None:
    """Convert motion files into datasets, label them, inspect and export clips."""
