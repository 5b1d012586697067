"""Diagnose: probes (LR range test, gradient noise scale, init check, BatchNorm check, capacity) -> findings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from steadyval.config import TrainConfig
from steadyval.data import Dataset
from steadyval.diagnose.base import Probe, ProbeContext, ProbeResult, run_probes
from steadyval.diagnose.probes import ALL_PROBES


def probe(dataset: Dataset, config: TrainConfig, progress: bool = False, trained: Sequence[Path] = ()) -> ProbeResult:
    """Run every probe on ``dataset`` with ``config`` (``trained``: weights of models trained with it)."""
    return run_probes(dataset, config, [p() for p in ALL_PROBES], progress=progress, trained=trained)


__all__ = ["Probe", "ProbeContext", "ProbeResult", "probe", "run_probes"]
