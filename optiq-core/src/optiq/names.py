"""The one rule for the names a dataset stores: clip names, clip label keys and frame label names.

A dataset must convert between formats, so a name is refused when any format cannot hold it: HDF5 splits group
and dataset names at ``/`` and treats ``.``/``..`` as paths, C libraries stop at NUL, and whitespace at either
end or control characters make names that look equal but are not. The rule is stated in docs/dataset-format.md.
"""

from __future__ import annotations

import os
import re

from .errors import DatasetError, OptiqError

MAX_NAME_LENGTH = 255

# C0 and C1 control characters (NUL, tab, newline, escape, DEL, ...).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What ``safe_name`` replaces: '/' and the control characters.
_UNSAFE = re.compile(r"[/\x00-\x1f\x7f-\x9f]")


def check_name(name: object, what: str, path: str | os.PathLike | None = None, *,
               error: type[OptiqError] = DatasetError) -> str:
    """Return ``name`` when a dataset can store it, else raise ``error`` naming ``what`` (``"clip name"``,
    ``"frame label name"``...) and ``path``.

    A name is a non-empty string of at most 255 characters, without ``/`` or control characters (NUL included),
    without whitespace at either end, and is not ``.`` or ``..``.
    """
    if not isinstance(name, str):
        raise error(f"{what} {name!r} is a {type(name).__name__}, expected a string", path)
    if not name:
        raise error(f"{what} is empty; names must be non-empty", path)
    problem = None
    if len(name) > MAX_NAME_LENGTH:
        problem = f"has {len(name)} characters (at most {MAX_NAME_LENGTH})"
    elif "/" in name:
        problem = "contains '/'"
    elif (m := _CONTROL.search(name)) is not None:
        problem = f"contains the control character {m.group()!r}"
    elif name != name.strip():
        problem = "starts or ends with whitespace"
    elif name in (".", ".."):
        problem = "is a path component"
    if problem:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise error(f"{what} {shown!r} {problem}; names must be 1-{MAX_NAME_LENGTH} characters without '/', "
                    f"control characters or surrounding whitespace, and not '.' or '..' (docs/dataset-format.md)",
                    path)
    return name


def safe_name(text: str, fallback: str) -> str:
    """``text`` made into a name that ``check_name`` accepts, for loaders that name clips after what a file holds
    (FBX stacks): ``/`` and control characters become ``_``, whitespace at either end is dropped, at most
    255 characters are kept; ``fallback`` (itself a valid name) when nothing usable is left."""
    name = _UNSAFE.sub("_", text)[:MAX_NAME_LENGTH].strip()
    return name if name not in ("", ".", "..") else fallback
