"""Readers: our run directories and other tools' training logs -> History.

Supported: steadyval run directories, trained or recorded (steadyval.integrations); Keras
CSVLogger CSV and ``History.history`` JSON (``acc`` and ``accuracy`` spellings); a pandas
dump of a History (unnamed index column);
Lightning CSVLogger ``metrics.csv``; long CSVs with a ``phase`` (train/val) column;
TensorBoard event files (needs the ``tensorboard`` package); a pickled history dict only
with ``trust_pickle`` (loading a pickle runs code); any CSV with a column mapping.
"""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from steadyval.curves.history import History
from steadyval.errors import DataError

ALIASES = {
    "acc": "accuracy", "binary_accuracy": "accuracy", "train_acc": "accuracy",
    "train_accuracy": "accuracy", "train_loss": "loss",
    "val_acc": "val_accuracy", "val_binary_accuracy": "val_accuracy", "valid_loss": "val_loss",
    "valid_acc": "val_accuracy", "learning_rate": "lr", "epoch_loss": "loss",
    "epoch_accuracy": "accuracy", "epoch_auc": "auc", "auroc": "auc", "val_auroc": "val_auc",
}


def read_log(path: Path | str, *, val_size: int | None = None, trust_pickle: bool = False,
             columns: dict[str, str] | None = None) -> History:
    """Read one log (file or run directory) into a History."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"LOG '{path}'", "must be an existing log file or run directory",
                        "a path that does not exist", "Check the path.")
    if path.is_dir():
        if (path / "config.json").exists() and (path / "metrics.csv").exists():
            return _our_run(path, val_size)
        if all((path / name).exists() for name in ("metrics.csv", "val_probs.npy", "val_index.csv")):
            return _recorded_run(path, val_size)
        events = sorted(path.rglob("events.out.tfevents.*"))
        if events:
            return _tensorboard(path, events, val_size)
        if (path / "metrics.csv").exists():
            return _from_csv(path / "metrics.csv", val_size, columns)
        raise DataError(f"LOG '{path}'",
                        "a folder must be a steadyval run (trained or recorded), hold metrics.csv or TensorBoard "
                        "events",
                        "none of them", "Point at the log file itself.")
    name = path.name.lower()
    if name.endswith((".pkl", ".pkl.gz", ".pickle", ".pickle.gz")):
        if not trust_pickle:
            raise DataError(f"LOG '{path}'", "pickles run code when loaded, so they are read only on request",
                            "a pickle", "Pass --trust-pickle if you trust where this file came from.")
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            data = pickle.load(fh)  # noqa: S301 - the user vouched for it with --trust-pickle
        return _from_dict(data, str(path), val_size)
    if name.startswith("events.out.tfevents"):
        return _tensorboard(path.parent, [path], val_size)
    if name.endswith(".json"):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"LOG '{path}'", "must be valid JSON", str(exc), "Check the file.") from None
        return _from_dict(data, str(path), val_size)
    if name.endswith(".csv"):
        return _from_csv(path, val_size, columns)
    raise DataError(f"LOG '{path}'", "must be a CSV, JSON, TensorBoard event file, pickle or run folder",
                    f"'{path.suffix}'", "Export the history with Keras's CSVLogger or as JSON.")


def _canonical(frame: pd.DataFrame, columns: dict[str, str] | None, source: str) -> pd.DataFrame:
    rename = {c: ALIASES.get(c.strip().lower(), c.strip().lower()) for c in frame.columns}
    frame = frame.rename(columns=rename)
    if columns:
        missing = [src for src in columns.values() if src not in frame.columns]
        if missing:
            raise DataError("--columns", "must map canonical names to columns of the log",
                            f"unknown column(s) {missing}", f"Columns are: {', '.join(frame.columns)}.")
        frame = frame.rename(columns={src: dst for dst, src in columns.items()})
    frame = frame.loc[:, ~frame.columns.duplicated()]
    if "epoch" not in frame:
        frame.insert(0, "epoch", np.arange(len(frame)))
    if "loss" not in frame and "val_loss" not in frame and "val_accuracy" not in frame:
        raise DataError(f"LOG '{source}'", "needs at least one of loss, val_loss, val_accuracy",
                        f"columns {list(frame.columns)}", "Map your column names with --columns val_loss=NAME.")
    return frame.reset_index(drop=True)


def _from_dict(data: object, source: str, val_size: int | None) -> History:
    if not isinstance(data, dict) or not data:
        raise DataError(f"LOG '{source}'", "must hold a dict of metric lists (Keras History.history)",
                        type(data).__name__, "Save history.history, not the History object.")
    lengths = {k: len(v) for k, v in data.items() if isinstance(v, (list, tuple, np.ndarray))}
    n = max(lengths.values()) if lengths else 0
    frame = pd.DataFrame({k: list(v) + [np.nan] * (n - len(v)) for k, v in data.items() if k in lengths})
    return History(source, _canonical(frame, None, source), val_size)


def _from_csv(path: Path, val_size: int | None, columns: dict[str, str] | None) -> History:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"LOG '{path}'", "must be a CSV with a header row", type(exc).__name__,
                        "Check the file.") from None
    first = frame.columns[0]
    if str(first).startswith("Unnamed") or first == "":
        frame = frame.drop(columns=first)  # a pandas dump keeps its index as a nameless column
    if "phase" in frame.columns:
        frame = _pivot_phases(frame)
    elif "epoch" in frame.columns and frame["epoch"].duplicated().any():
        # Lightning logs train and val metrics on separate rows of the same epoch.
        frame = frame.groupby("epoch", sort=True).last().reset_index()
        frame = frame.drop(columns=[c for c in ("step",) if c in frame])
    return History(str(path), _canonical(frame, columns, str(path)), val_size)


def _pivot_phases(frame: pd.DataFrame) -> pd.DataFrame:
    metrics = [c for c in frame.columns if c not in ("epoch", "phase")]
    wide = None
    for phase, part in frame.groupby("phase"):
        prefix = "" if str(phase).lower() == "train" else "val_"
        part = part.groupby("epoch")[metrics].last().add_prefix(prefix)
        wide = part if wide is None else wide.join(part, how="outer")
    assert wide is not None
    return wide.reset_index()


def _our_run(path: Path, val_size: int | None) -> History:
    from steadyval.train.run import load_run

    run = load_run(path)
    return History(str(path), run.metrics, val_size or len(run.val_index), run.val_probs, run.val_index,
                   [f"run status: {run.status}"], run.config.model_dump())


def _recorded_run(path: Path, val_size: int | None) -> History:
    """A folder written by steadyval.integrations (a Keras, Lightning or plain PyTorch loop)."""
    from steadyval.train.run import read_val_index

    try:
        metrics = pd.read_csv(path / "metrics.csv")
        probs = np.load(path / "val_probs.npy")
        index = read_val_index(path)
    except (ValueError, OSError, EOFError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"LOG '{path}'", "a recorded run's files must be readable", f"{type(exc).__name__}: {exc}",
                        "Record the run again; a file was cut short or replaced.") from None
    if probs.ndim != 2 or probs.shape != (len(metrics), len(index)) or "label" not in index:
        raise DataError(f"LOG '{path}'", "val_probs.npy must hold one row per epoch of metrics.csv and one "
                        "column per image of val_index.csv (with a label column)",
                        f"shape {probs.shape} for {len(metrics)} epochs and {len(index)} images",
                        "Record the run again: these files come from different runs.")
    info_path = path / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    notes = [f"recorded by {info.get('recorded_by', 'a RunRecorder')}, status: {info.get('status', 'unknown')}"]
    return History(str(path), _canonical(metrics, None, str(path)), val_size or len(index), probs, index, notes)


def _tensorboard(root: Path, events: list[Path], val_size: int | None) -> History:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.util import tensor_util
    except ImportError:
        raise DataError(f"LOG '{root}'", "TensorBoard event files need the tensorboard package",
                        "it is not installed", "pip install tensorboard (or steadyval[tensorboard]).") from None
    series: dict[str, dict[int, float]] = {}
    notes: list[str] = []
    offsets: dict[str, int] = {}  # per split folder: where the next restarting file begins
    ends: dict[str, int] = {}
    for event_file in _by_start_time(events):
        prefix = "val_" if "validation" in event_file.parent.name else ""
        acc = EventAccumulator(str(event_file), size_guidance={"tensors": 0, "scalars": 0})
        acc.Reload()
        values: dict[str, dict[int, float]] = {}
        for tag in acc.Tags().get("scalars", []):
            values[tag] = {ev.step: ev.value for ev in acc.Scalars(tag)}
        for tag in acc.Tags().get("tensors", []):
            points = {ev.step: tensor_util.make_ndarray(ev.tensor_proto) for ev in acc.Tensors(tag)}
            values[tag] = {step: float(v) for step, v in points.items() if v.size == 1}
        # Keras writes per-epoch tags (epoch_*) and per-iteration ones on another step axis.
        per_epoch = {t: v for t, v in values.items() if t.startswith("epoch_")} or values
        steps = [st for v in per_epoch.values() for st in v]
        if not steps:
            continue
        key = str(event_file.parent)
        offset = offsets.get(key, 0)
        if key in ends and min(steps) <= ends[key]:
            # A second training phase restarts its epoch count: append it after the first.
            offset = ends[key] + 1
            notes.append(f"{event_file.name} restarts at epoch {min(steps)}: appended as epochs "
                         f"{offset}..{offset + max(steps) - min(steps)}")
        offsets[key] = offset
        ends[key] = offset + max(steps)
        for tag, points in per_epoch.items():
            for step, value in points.items():
                series.setdefault(prefix + tag, {})[offset + step] = value
    if not series:
        raise DataError(f"LOG '{root}'", "TensorBoard files must hold scalar metrics", "none",
                        "Log with the Keras TensorBoard callback or SummaryWriter.add_scalar.")
    frame = pd.DataFrame(series).sort_index()
    frame.index.name = "epoch"
    frame = frame.reset_index()
    frame.columns = [c.replace("val_epoch_", "val_") for c in frame.columns]
    return History(str(root), _canonical(frame, None, str(root)), val_size, notes=notes)


def _by_start_time(events: list[Path]) -> list[Path]:
    """Event files in the order they were written (the number after 'tfevents.' is a timestamp)."""
    def start(path: Path) -> float:
        try:
            return float(path.name.split(".")[3])
        except (IndexError, ValueError):
            return path.stat().st_mtime
    return sorted(events, key=start)
