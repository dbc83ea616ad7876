"""Characters: simulated bodies built from a DeepMimic character file, from any optiq skeleton, or loaded from
any MJCF; ``character(name_or_path)`` finds one by registered name or by file."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Character, CharacterError, load_mjcf

__all__ = ["Character", "CharacterError", "character", "character_names"]


def character_names() -> list[str]:
    """Names of the registered characters (adapters of kind ``character``)."""
    from optiq.plugins import registry

    return sorted(c.name for c in registry("adapter") if c.meta.get("kind") == "character")


def character(name_or_path: str | os.PathLike | Character) -> Character:
    """A character by registered name (``"deepmimic"``), ``"module:attr"`` of a function returning one, or file:
    an MJCF (``.xml``), a DeepMimic character file (``.txt``) or a dataset (its skeleton, ``from_skeleton``)."""
    if isinstance(name_or_path, Character):
        return name_or_path
    text = os.fspath(name_or_path)
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return load_mjcf(path)
    if suffix == ".txt":
        from .deepmimic import deepmimic_character

        return deepmimic_character(path)
    if suffix in (".parquet", ".h5", ".hdf5"):
        from .skeleton import character_from_dataset

        return character_from_dataset(path)
    return _registered(text)


def _registered(name: str) -> Character:
    from optiq.plugins import registry

    reg = registry("adapter")
    if ":" not in name and (name not in reg or reg.get(name).meta.get("kind") != "character"):
        raise CharacterError(f"unknown character {name!r}; registered: {', '.join(character_names()) or 'none'}; "
                             "or pass an MJCF (.xml), a DeepMimic character file (.txt) or a dataset")
    made = reg.load(name)
    made = made() if callable(made) and not isinstance(made, Character) else made
    if not isinstance(made, Character):
        raise CharacterError(f"character {name!r}: its target gave {type(made).__name__}, expected a Character")
    return made
