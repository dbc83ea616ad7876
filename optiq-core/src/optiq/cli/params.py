"""Click parameter types shared by optiq's commands (core and plugins)."""

from __future__ import annotations

import math

import click


class _FiniteFloat(click.ParamType):
    """A finite number: ``nan``, ``inf`` and overflowing text (``1e400``), which ``float`` and
    ``click.FloatRange`` let through, fail with one line saying what was expected."""

    expected = "a finite number"

    def number(self, value, param, ctx) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r}: expected {self.expected}", param, ctx)
        return number


class PositiveFloat(_FiniteFloat):
    """A finite number > 0, at most ``max`` (``why``: the reason for the bound, said in the error).

    The bound keeps a value from becoming a memory blow-up (``--fps 1e7`` resamples a clip to ten million frames
    a second)."""

    name = "number"
    expected = "a finite number > 0"

    def __init__(self, max: float | None = None, why: str = "") -> None:
        self.max = max
        self.why = why

    def convert(self, value, param, ctx) -> float:
        number = self.number(value, param, ctx)
        if number <= 0:
            self.fail(f"{value!r}: expected {self.expected}", param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"{value!r}: expected at most {self.max:g}{f' ({self.why})' if self.why else ''}", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"PositiveFloat(max={self.max})"


class Degrees(_FiniteFloat):
    """A finite angle in degrees within ``[lo, hi]`` (degrees at the CLI boundary; commands convert to radians)."""

    name = "degrees"
    expected = "a finite angle in degrees"

    def __init__(self, lo: float = -math.inf, hi: float = math.inf) -> None:
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx) -> float:
        number = self.number(value, param, ctx)
        if not self.lo <= number <= self.hi:
            self.fail(f"{value!r}: expected degrees from {self.lo:g} to {self.hi:g}", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"Degrees({self.lo:g}, {self.hi:g})"


MAX_FPS = 10_000.0
#: ``--fps``: frames per second to resample to.
FPS = PositiveFloat(MAX_FPS, "a higher rate multiplies every clip's frames and its memory, "
                              "e.g. 1e7 fps makes a 10 s clip 100 million frames")
#: ``--smooth``: a low-pass cut-off in Hz (bounded by the clip's Nyquist rate where it is applied).
HERTZ = PositiveFloat()
#: ``--scale``: a length factor.
FACTOR = PositiveFloat()


def parse_labels(items) -> dict[str, str] | None:
    """``--label NAME=VALUE`` texts (repeated) as ``{name: value}``; None when there are none. A text without
    ``=``, a name or a value is one line saying what was expected."""
    from optiq.errors import OptiqError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value:
            raise OptiqError(f"--label {item!r}: expected name=value, e.g. content=run")
        out[key.strip()] = value
    return out or None
