"""Early stopping replayed on a finished run: the same training, cut where it would have stopped.

Early stopping changes only when a run ends and which weights it keeps; every epoch before
the stop is the same computation as in the run without it (same seed, same batches, same
updates; ``tests/train/test_replay.py`` checks this against a real early-stopped training).
So an early-stopping trial whose training twin has already run all its epochs is read off
that twin's recorded epochs instead of being trained again. Its run directory holds the
curves and every val image's probability up to the stop; it holds no weights (the twin's
weights at the stopping epoch were not kept), and ``run.json`` says so and names the twin.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd

from steadyval._io import atomic_write_json
from steadyval.config import TrainConfig, same_training
from steadyval.train.run import Run, save_epoch
from steadyval.train.trainer import EarlyStopping

# run.json keys that describe the training itself, the same for the replayed run.
_SHARED_INFO = ("n_train", "n_val", "parameters", "positive", "classes", "steps_per_epoch", "precision")


def can_replay(source: Run, config: TrainConfig) -> bool:
    """True when ``config``'s run can be read off ``source``: same training, source ran every epoch."""
    return (config.early_stopping and source.status == "completed"
            and same_training(source.config, config) and len(source.metrics) == config.epochs
            and len(source.val_probs) == config.epochs)


def replay_early_stopping(source: Run, config: TrainConfig, out: Path | str) -> Run:
    """The run ``config`` (with early stopping) would have made, cut from ``source``; written to ``out``."""
    if not can_replay(source, config):
        raise ValueError(f"{source.dir} cannot stand in for this config's training (see can_replay)")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stopper = EarlyStopping(config)
    kept, status, reason = config.epochs, "completed", f"ran all {config.epochs} epochs"
    for epoch, row in enumerate(source.metrics.to_dict("records")):
        stopper.update(row, epoch)
        if stopper.should_stop:
            kept, status, reason = epoch + 1, "early_stopped", stopper.reason
            break
    metrics = source.metrics.iloc[:kept].reset_index(drop=True)
    probs = source.val_probs[:kept]
    atomic_write_json(out / "config.json", config.model_dump())
    for name in ("val_index.csv", "env.json"):
        if (source.dir / name).exists():
            shutil.copyfile(source.dir / name, out / name)
    timings = source.dir / "timings.csv"
    rows = metrics
    if timings.exists():
        rows = metrics.merge(pd.read_csv(timings), on="epoch", how="left")
    save_epoch(out, rows, probs)
    info = {k: source.info[k] for k in _SHARED_INFO if k in source.info}
    info.update(status=status, stop_reason=reason, best_epoch=stopper.best_epoch, best_value=stopper.best,
                monitor=config.monitor, epochs_run=kept, seconds=time.perf_counter() - started,
                replayed_from=str(source.dir),
                weights=("not kept: this run was read off the run in replayed_from, which trained the "
                         "same epochs without stopping; retrain with this config.json for its weights"))
    atomic_write_json(out / "run.json", info)
    return Run(out, config, metrics, probs, source.val_index.copy(), info)
