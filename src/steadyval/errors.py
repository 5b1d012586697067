"""The one error hierarchy: every user-facing failure is a :class:`SteadyvalError`.

Messages follow one shape: which input, which rule, what was received, how to fix it.
The CLI prints ``str(error)`` and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SteadyvalError(Exception):
    """Base class of every error steadyval reports to a user."""

    def __init__(self, what: str, rule: str, received: object, fix: str) -> None:
        self.what = what
        self.rule = rule
        self.received = received
        self.fix = fix
        super().__init__(f"{what}: {rule}. Got {received}. {fix}")


class DataError(SteadyvalError):
    """The DATA argument cannot be used (missing, wrong layout, wrong number of classes)."""


class ConfigError(SteadyvalError):
    """An option or configuration value is invalid."""


def did_you_mean(value: str, options: Iterable[str]) -> str:
    """Return a 'Did you mean …? Available options are …' sentence for a bad option."""
    options = sorted(options)
    close = difflib.get_close_matches(value, options, n=1)
    hint = f"Did you mean '{close[0]}'? " if close else ""
    return f"{hint}Available options are: {', '.join(options)}."
