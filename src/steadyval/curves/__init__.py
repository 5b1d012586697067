"""Curves: Run | imported log -> History -> findings (curve statistics against the noise floor)."""

from __future__ import annotations

from pathlib import Path

from steadyval.curves.base import CurveResult, run_curve_checks
from steadyval.curves.checks import ALL_CURVE_CHECKS
from steadyval.curves.history import History
from steadyval.curves.readers import read_log


def analyze_history(history: History) -> CurveResult:
    """Run every curve check on one History."""
    return run_curve_checks(history, [c() for c in ALL_CURVE_CHECKS])


def analyze(logs: list[Path | str], *, val_size: int | None = None, trust_pickle: bool = False,
            columns: dict[str, str] | None = None) -> list[CurveResult]:
    """Read and analyse each log: the library form of ``steadyval analyze``."""
    return [analyze_history(read_log(p, val_size=val_size, trust_pickle=trust_pickle, columns=columns))
            for p in logs]


def same_config(histories: list[History]) -> bool:
    """True when the runs are seeds of one configuration (so a mean ± spread band means something)."""
    if len(histories) < 2 or len({h.n_epochs for h in histories}) != 1:
        return False
    configs = [h.config for h in histories]
    if all(c is None for c in configs):
        return True  # imported logs of equal length: the user grouped them
    if any(c is None for c in configs):
        return False
    strip = [{k: v for k, v in c.items() if k != "seed"} for c in configs]  # type: ignore[union-attr]
    return all(c == strip[0] for c in strip)


__all__ = ["same_config", "CurveResult", "History", "analyze", "analyze_history", "read_log"]
