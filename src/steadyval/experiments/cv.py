"""k-fold cross-validation: stratified (label x metadata), grouped by patient, over seeds.

The honest estimate when one val split is too small or too particular to trust: every
image is validated once per seed, and the spread of each metric is split into the part that
comes from which fold is held out and the part that comes from the training seed
(a two-way random-effects decomposition: seed variance = the mean within-fold variance over
seeds; fold variance = the variance of the fold means minus seed variance / n_seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steadyval.config import TrainConfig
from steadyval.data import Dataset
from steadyval.errors import ConfigError
from steadyval.experiments.remedies import SplitChange
from steadyval.experiments.runner import run_grid
from steadyval.experiments.trials import TrialOutcome, TrialSpec, fingerprint

CV_MEASURES = ("final_auroc", "best_auroc", "final_val_loss", "val_loss_volatility", "churn")


@dataclass
class CVResult:
    """Per (fold, seed) outcomes and the spread of each measure."""

    outcomes: list[TrialOutcome]
    folds: int
    seeds: list[int]
    stats: dict[str, dict[str, float]]
    out: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        from steadyval import __version__

        return {"steadyval_version": __version__, "command": "cv", "folds": self.folds, "seeds": self.seeds,
                "measures": self.stats, "trials": [o.to_dict() for o in self.outcomes]}


def cross_validate(dataset: Dataset, config: TrainConfig, out: Path | str, *, folds: int = 5, seeds: int = 1,
                   workers: int | None = None, progress: bool = False) -> CVResult:
    """Train ``folds`` x ``seeds`` runs and summarise each measure's mean, spread and sources."""
    if folds < 2:
        raise ConfigError("--folds", "must be at least 2", str(folds), "Use --folds 5.")
    if seeds < 1:
        raise ConfigError("--seeds", "must be at least 1", str(seeds), "Use --seeds 1, or 3 to separate seed noise.")
    n_groups = dataset.records.loc[dataset.records["split"].isin(["train", "val"]), "group"].nunique()
    if dataset.group_column and n_groups < folds:
        raise ConfigError("--folds", f"needs at least one patient per fold ({n_groups} groups here)", str(folds),
                          f"Use --folds {max(2, n_groups)} or fewer.")
    out = Path(out)
    seed_list = [config.seed + i for i in range(seeds)]
    specs = [TrialSpec("cv", (), config.model_copy(update={"seed": s}), SplitChange(), f, folds)
             for f in range(folds) for s in seed_list]
    outcomes = run_grid(specs, dataset, out / "trials", fingerprint(dataset), workers=workers,
                        progress=progress, label=f"{folds}-fold cross-validation")
    stats = {k: spread(outcomes, k, folds, seed_list) for k in CV_MEASURES}
    return CVResult(outcomes, folds, seed_list, stats, out)


def spread(outcomes: list[TrialOutcome], key: str, folds: int, seeds: list[int]) -> dict[str, float]:
    """Mean, SD, per-fold means and the fold / seed shares of the variance of one measure."""
    grid = np.full((folds, len(seeds)), np.nan)
    for o in outcomes:
        grid[o.fold, seeds.index(o.seed)] = o.measures.get(key, math.nan)
    values = grid[np.isfinite(grid)]
    out: dict[str, Any] = {"mean": float(values.mean()) if len(values) else math.nan,
                           "sd": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                           "per_fold": [float(np.nanmean(row)) if np.isfinite(row).any() else math.nan for row in grid]}
    if len(seeds) >= 2 and np.isfinite(grid).all():
        seed_var = float(np.mean(grid.var(axis=1, ddof=1)))
        fold_var = max(0.0, float(grid.mean(axis=1).var(ddof=1)) - seed_var / len(seeds))
        total = fold_var + seed_var
        out.update(fold_variance=fold_var, seed_variance=seed_var,
                   fold_share=fold_var / total if total > 0 else math.nan)
    return out
