"""Configuration files and command-line overrides, shared by every package that trains something.

A run's settings come from a YAML file (a path, or a config shipped with the package, found by name) and then from
the command line: ``--lr 1e-3``, ``--model.d_model=256`` or ``lr=1e-3``, each value read as YAML. The packages own
their config classes (which keys exist, their types); this module owns the reading, so that ``optiq train model``
and ``optiq train rl`` accept the same forms and fail with the same one-line errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import OptiqError


class ConfigError(OptiqError):
    """A config file or a setting that cannot be used: unknown key, wrong type, not YAML, not found."""


def parse_overrides(args: Sequence[str]) -> list[str]:
    """Extra command-line words as ``key=value`` strings: ``--lr 1e-3``, ``--lr=1e-3``, ``lr=1e-3``,
    ``--model.d_model 256``; a ``--flag`` followed by another option or nothing means ``flag=true``."""
    out, args, i = [], list(args), 0
    while i < len(args):
        word = args[i]
        if word.startswith("--"):
            key = word[2:]
            if "=" in key:
                out.append(key)
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                out.append(f"{key}={args[i + 1]}")
                i += 1
            else:
                out.append(f"{key}=true")
        elif "=" in word:
            out.append(word)
        else:
            raise OptiqError(f"unexpected argument {word!r}: config overrides are --key VALUE or key=value")
        i += 1
    return out


def override_values(items: Iterable[str], convert: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """``["lr=1e-3", "labels=[content]"]`` -> ``{"lr": ..., "labels": [...]}``, each value read as YAML (an empty
    value is None) and passed through ``convert`` when given. A word without ``=`` is a ConfigError."""
    import yaml

    out = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        out[key.strip().lstrip("-")] = convert(value) if convert is not None else value
    return out


def find_config(name: str | os.PathLike, folder: Path, prefixes: Sequence[str] = ("",)) -> Path:
    """A config file: ``name`` as a path when it is a file, else a config shipped in ``folder`` found by its stem
    with each of ``prefixes`` (``transformer`` -> ``model_transformer.yaml``). Not found: ConfigError listing the
    shipped ones."""
    p = Path(name)
    if p.is_file():
        return p
    stem = p.name.removesuffix(".yaml").removesuffix(".yml")
    for prefix in prefixes:
        shipped = folder / f"{prefix}{stem}.yaml"
        if shipped.is_file():
            return shipped
    known = ", ".join(sorted(q.stem for q in folder.glob("*.yaml")))
    raise ConfigError(f"no config file {str(name)!r}; shipped configs: {known}")


def read_config_file(path: str | os.PathLike) -> Mapping[str, Any]:
    """The mapping of a YAML config file (an empty file is ``{}``); not YAML or not a mapping: ConfigError naming
    the file."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {' '.join(str(exc).split())}", path) from None
    if not isinstance(values, Mapping):
        raise ConfigError("expected a mapping of keys to values", path)
    return values
