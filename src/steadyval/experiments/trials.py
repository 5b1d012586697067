"""Trials: one (config, split change, seed, fold) training run, its measures, and its cache.

A trial is keyed by a hash of everything that defines it (config with seed, split change,
fold, and a fingerprint of the data), so re-running the doctor after an interruption reuses
every finished trial: its ``result.json`` is written atomically after training ends, and a
trial without one is trained again from scratch.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from steadyval._io import atomic_write_json
from steadyval.config import TrainConfig, lineage_fields, training_fields
from steadyval.curves.measures import churn, val_loss_rise_volatility, val_loss_volatility
from steadyval.data import Dataset
from steadyval.data.split import fold_masks, stratified_group_split
from steadyval.experiments.remedies import SplitChange


@dataclass(frozen=True)
class TrialSpec:
    """What to train: a named arm (``baseline`` or remedy ids), one seed, optionally one fold."""

    arm: str
    remedies: tuple[str, ...]
    config: TrainConfig
    split: SplitChange = field(default_factory=SplitChange)
    fold: int | None = None
    folds: int = 0

    @property
    def seed(self) -> int:
        """The training seed of this trial."""
        return self.config.seed

    def key(self, fingerprint: str) -> str:
        """A stable id of everything that determines this trial's result."""
        return self._hash(self.config.model_dump(mode="json"), fingerprint)

    def training_key(self, fingerprint: str) -> str:
        """A stable id of the training alone: equal for trials that differ only in when they stop."""
        return self._hash(training_fields(self.config), fingerprint)

    def lineage_key(self, fingerprint: str) -> str:
        """A stable id of the training but for its length: equal for trials that one run's
        continuation gives (``steadyval.train.trainer.can_resume``)."""
        return self._hash(lineage_fields(self.config), fingerprint)

    def _hash(self, config: dict[str, Any], fingerprint: str) -> str:
        payload = json.dumps({"config": config, "split": asdict(self.split), "fold": self.fold,
                              "folds": self.folds, "data": fingerprint}, sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class TrialOutcome:
    """The measures of one finished trial (what ``result.json`` holds)."""

    key: str
    arm: str
    remedies: list[str]
    seed: int
    fold: int | None
    measures: dict[str, float]
    status: str
    seconds: float
    n_train: int
    n_val: int
    run_dir: str
    training: str = ""  # TrialSpec.training_key: trials with the same one trained the same epochs
    replayed_from: str = ""  # the key of the trial this one was read off (early stopping), if any
    lineage: str = ""  # TrialSpec.lineage_key: a longer trial of the same one can continue this one
    resumed_from: str = ""  # the key of the shorter trial this one continued, if any
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the in-session ``reused`` flag)."""
        d = asdict(self)
        d.pop("reused")
        return d


def fingerprint(dataset: Dataset) -> str:
    """A hash of the dataset's records and images: trials of other data are never reused."""
    h = hashlib.sha256()
    cols = ["path", "label", "split", "group", *dataset.metadata]
    h.update(dataset.records[cols].to_csv(index=False).encode())
    h.update(np.ascontiguousarray(dataset.images).data)
    return h.hexdigest()[:16]


def apply_split(dataset: Dataset, change: SplitChange, fold: int | None = None, folds: int = 0,
                seed: int = 0) -> Dataset:
    """A copy of ``dataset`` (sharing its image array) with the trial's train/val split."""
    records = dataset.records.copy()
    pool = records["split"].isin(["train", "val"]).to_numpy()
    if folds:
        assert fold is not None
        # Every arm of a k-fold grid sees the same folds: stratified by label x the categorical
        # metadata, grouped by patient, drawn with a fixed seed.
        masks = fold_masks(records[pool].reset_index(drop=True), folds, dataset.categorical_metadata, seed)
        records.loc[pool, "split"] = np.where(masks[fold], "val", "train")
    elif change.rebalance:
        n_val = int((records["split"] == "val").sum())
        sub = records[pool].reset_index(drop=True)
        val = stratified_group_split(sub, n_val / max(len(sub), 1), by=list(change.by), seed=seed)
        records.loc[pool, "split"] = np.where(val, "val", "train")
    if change.drop_train or change.drop_val:
        drop = ((records["split"] == "train") & records["path"].isin(change.drop_train)) | (
            (records["split"] == "val") & records["path"].isin(change.drop_val))
        records.loc[drop, "split"] = "excluded"
    return replace(dataset, records=records)


def measure(metrics: pd.DataFrame, val_probs: np.ndarray, info: dict[str, Any],
            config: TrainConfig) -> dict[str, float]:
    """The DESIGN.md measures of one run, plus the AUROC of the model the run ends with."""
    auc = pd.to_numeric(metrics["val_auc"], errors="coerce").to_numpy(dtype=float) if len(metrics) else np.array([])
    finite = auc[np.isfinite(auc)]
    final_row = len(metrics) - 1
    if config.early_stopping and config.restore_best and info.get("best_epoch") is not None:
        final_row = int(info["best_epoch"])  # the restored weights are the ones the user keeps
    val_loss = metrics["val_loss"].to_numpy(dtype=float) if len(metrics) else np.array([])
    out = {
        **_stability(val_loss, val_probs),
        "final_auroc": float(auc[final_row]) if len(auc) else math.nan,
        "best_auroc": float(finite.max()) if len(finite) else math.nan,
        "final_val_loss": float(metrics["val_loss"].iloc[final_row]) if len(metrics) else math.nan,
        "epochs_run": float(len(metrics)),
    }
    return {k: (float(v) if v is not None else math.nan) for k, v in out.items()}


def window_measures(run_dir: Path | str, epochs: int) -> dict[str, float] | None:
    """Volatility and churn of a finished run over its first ``epochs`` epochs (None if unreadable).

    An early-stopped arm ran fewer epochs than its baseline; its curve over those epochs is
    compared with the baseline's over the same epochs, or the descent that dominates early
    epochs would count as instability that training longer merely dilutes.
    """
    run_dir = Path(run_dir)
    try:
        metrics = pd.read_csv(run_dir / "metrics.csv")
        probs = np.load(run_dir / "val_probs.npy")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if len(metrics) < epochs or len(probs) < epochs:
        return None
    return _stability(metrics["val_loss"].to_numpy(dtype=float)[:epochs], probs[:epochs])


def _stability(val_loss: np.ndarray, val_probs: np.ndarray) -> dict[str, float]:
    """Val-loss volatility (and its rising part) and churn of one run's epochs."""
    return {"val_loss_volatility": val_loss_volatility(val_loss) if len(val_loss) else math.nan,
            "val_loss_rise_volatility": val_loss_rise_volatility(val_loss) if len(val_loss) else math.nan,
            "churn": churn(val_probs[1:] >= 0.5) if len(val_probs) > 2 else math.nan}


def run_trial(spec: TrialSpec, dataset: Dataset, root: Path, data_fingerprint: str, keep_state: bool = False,
              resume: TrialOutcome | None = None) -> TrialOutcome:
    """Train one trial into ``root/<key>/`` unless its result is already there.

    ``keep_state`` keeps the training state so that a longer trial can continue this one;
    ``resume`` is such a shorter trial to continue (trained from scratch when it cannot be).
    """
    import time

    from steadyval.train import load_run, train
    from steadyval.train.trainer import can_resume

    key = spec.key(data_fingerprint)
    trial_dir = root / key
    cached = load_outcome(trial_dir)
    if cached is not None:
        return cached
    if trial_dir.exists():  # an interrupted trial: start it again from scratch
        shutil.rmtree(trial_dir)
    trial_dir.mkdir(parents=True)
    data = apply_split(dataset, spec.split, spec.fold, spec.folds)
    source, resumed_from = None, ""
    if resume is not None and resume.lineage == spec.lineage_key(data_fingerprint):
        try:
            source = load_run(resume.run_dir)
        except (OSError, ValueError, KeyError, TypeError):  # the shorter run's files were removed or damaged
            source = None
        if source is not None and can_resume(source, spec.config):
            resumed_from = resume.key
        else:
            source = None
    start = time.perf_counter()
    run = train(data, spec.config, trial_dir / "run", keep_state=keep_state, resume=source)
    return _finish(spec, run, trial_dir, data_fingerprint, time.perf_counter() - start, resumed_from=resumed_from)


def replay_trial(spec: TrialSpec, source: TrialOutcome, root: Path, data_fingerprint: str) -> TrialOutcome | None:
    """An early-stopping trial read off ``source``, its training twin that ran every epoch.

    None when ``source`` cannot stand in (another training, or it did not finish every epoch);
    the caller then trains the trial. See :mod:`steadyval.train.replay` for why this is exact.
    """
    from steadyval.train import load_run
    from steadyval.train.replay import can_replay, replay_early_stopping

    key = spec.key(data_fingerprint)
    trial_dir = root / key
    cached = load_outcome(trial_dir)
    if cached is not None:
        return cached
    if source.training != spec.training_key(data_fingerprint):
        return None
    try:
        twin = load_run(source.run_dir)
    except (OSError, ValueError, KeyError, TypeError):  # the twin's files were removed or damaged
        return None
    if not can_replay(twin, spec.config):
        return None
    if trial_dir.exists():
        shutil.rmtree(trial_dir)
    run = replay_early_stopping(twin, spec.config, trial_dir / "run")
    return _finish(spec, run, trial_dir, data_fingerprint, float(run.info["seconds"]), replayed_from=source.key)


def _finish(spec: TrialSpec, run: Any, trial_dir: Path, data_fingerprint: str, seconds: float,
            replayed_from: str = "", resumed_from: str = "") -> TrialOutcome:
    outcome = TrialOutcome(
        key=trial_dir.name, arm=spec.arm, remedies=list(spec.remedies), seed=spec.seed, fold=spec.fold,
        measures=measure(run.metrics, run.val_probs, run.info, spec.config), status=run.status,
        seconds=seconds, n_train=int(run.info["n_train"]), n_val=int(run.info["n_val"]),
        run_dir=str(trial_dir / "run"), training=spec.training_key(data_fingerprint), replayed_from=replayed_from,
        lineage=spec.lineage_key(data_fingerprint), resumed_from=resumed_from,
    )
    atomic_write_json(trial_dir / "result.json", outcome.to_dict())
    return outcome


def load_outcome(trial_dir: Path) -> TrialOutcome | None:
    """A finished trial's outcome, or None when it has not finished."""
    path = trial_dir / "result.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        data["measures"] = {k: math.nan if v is None else float(v) for k, v in data["measures"].items()}
        return TrialOutcome(**data, reused=True)
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
        return None  # written by another version: train it again
