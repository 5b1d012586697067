"""A run directory: what one training run leaves behind, readable by ``steadyval analyze``.

    config.json      the TrainConfig
    metrics.csv      one row per epoch (Keras CSVLogger names: epoch, loss, accuracy, val_loss, …);
                     identical for the same seed on CPU
    timings.csv      seconds per epoch spent training and validating (not deterministic)
    val_probs.npy    (epochs, n_val) float32 probability of the positive class, every val image
    val_index.csv    path, label, group and metadata of each val image (columns of val_probs)
    best.pt last.pt  weights (best by the monitored metric; after the last epoch)
    state.pt         only with train(keep_state=True): the training state, to continue the run
    run.json         status, why it stopped, best epoch, timings
    env.json         versions and hardware
"""

from __future__ import annotations

import io
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from steadyval._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from steadyval.config import TrainConfig


@dataclass
class Run:
    """One training run, in memory and on disk."""

    dir: Path
    config: TrainConfig
    metrics: pd.DataFrame
    val_probs: np.ndarray  # (E, n_val)
    val_index: pd.DataFrame  # n_val rows: path, label, group, metadata
    info: dict[str, Any]

    @property
    def status(self) -> str:
        """completed, early_stopped, nonfinite or interrupted."""
        return str(self.info.get("status", "unknown"))


TIMING_COLUMNS = ("train_seconds", "val_seconds")


def val_metrics(p: np.ndarray, losses: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """One epoch's validation metrics from every val image's probability and loss (threshold 0.5)."""
    from sklearn.metrics import roc_auc_score

    pred = p >= 0.5
    pos, neg = y == 1, y == 0
    auc = float(roc_auc_score(y, p)) if pos.any() and neg.any() and np.isfinite(p).all() else float("nan")
    return {"val_loss": float(losses.mean()), "val_accuracy": float((pred == pos).mean()),
            "val_auc": auc, "val_sensitivity": float(pred[pos].mean()) if pos.any() else float("nan"),
            "val_specificity": float((~pred[neg]).mean()) if neg.any() else float("nan")}


def save_epoch(run_dir: Path, rows: pd.DataFrame, val_probs: np.ndarray) -> None:
    """Rewrite the per-epoch files atomically (a killed run leaves whole files)."""
    timing = [c for c in TIMING_COLUMNS if c in rows]
    atomic_write_text(run_dir / "metrics.csv", rows.drop(columns=timing).to_csv(index=False))
    if timing:
        atomic_write_text(run_dir / "timings.csv", rows[["epoch", *timing]].to_csv(index=False))
    buf = io.BytesIO()
    np.save(buf, val_probs.astype(np.float32))
    atomic_write_bytes(run_dir / "val_probs.npy", buf.getvalue())


def save_static(run_dir: Path, config: TrainConfig, val_index: pd.DataFrame, device: str) -> None:
    """Files written once at the start: config, val index, environment."""
    import torch

    from steadyval import __version__

    atomic_write_json(run_dir / "config.json", config.model_dump())
    atomic_write_text(run_dir / "val_index.csv", val_index.to_csv(index=False))
    atomic_write_json(run_dir / "env.json", {
        "steadyval": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    })


def read_val_index(run_dir: Path) -> pd.DataFrame:
    """``val_index.csv`` of a run folder (trained or recorded), paths and groups as text."""
    return pd.read_csv(run_dir / "val_index.csv", dtype={"path": str, "group": str}, keep_default_na=False)


def load_run(run_dir: Path | str) -> Run:
    """Read a run directory written by the trainer."""
    run_dir = Path(run_dir)
    config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    metrics = pd.read_csv(run_dir / "metrics.csv")
    probs_path = run_dir / "val_probs.npy"
    val_probs = np.load(probs_path) if probs_path.exists() else np.zeros((len(metrics), 0))
    val_index = read_val_index(run_dir)
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {"status": "interrupted"}
    return Run(run_dir, config, metrics, val_probs, val_index, info)
