"""Diagnose: probes (LR range test, init check, BatchNorm check, capacity) -> findings."""

from __future__ import annotations

from steadyval.config import TrainConfig
from steadyval.data import Dataset
from steadyval.diagnose.base import Probe, ProbeContext, ProbeResult, run_probes
from steadyval.diagnose.probes import ALL_PROBES


def probe(dataset: Dataset, config: TrainConfig, progress: bool = False) -> ProbeResult:
    """Run every probe on ``dataset`` with ``config``."""
    return run_probes(dataset, config, [p() for p in ALL_PROBES], progress=progress)


__all__ = ["Probe", "ProbeContext", "ProbeResult", "probe", "run_probes"]
