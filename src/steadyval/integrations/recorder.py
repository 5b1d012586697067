"""Record any training loop's validation predictions as a run directory ``steadyval analyze`` reads.

A log of aggregates (val loss and accuracy per epoch) only lets the analysis approximate
the noise floor from the validation-set size. With every val image's probability at every
epoch it can test each jump exactly (McNemar on the same images), measure churn, and say
which images and which subgroups (site, class) drive the swings in val loss. The Keras
and Lightning callbacks in this package feed a :class:`RunRecorder`; a plain PyTorch
loop calls it directly::

    recorder = RunRecorder("runs/baseline", labels=y_val, paths=val_paths, metadata={"site": sites})
    for epoch in range(epochs):
        ...  # train one epoch
        recorder.log_epoch(logits=val_logits, metrics={"loss": train_loss, "lr": lr})
    recorder.close()

The folder holds ``metrics.csv`` (Keras CSVLogger names), ``val_probs.npy`` (epochs x val
images), ``val_index.csv`` (path, label, group and metadata of each val image) and
``run.json``; each is rewritten atomically after every epoch, so a killed run leaves a
readable folder. Then: ``steadyval analyze runs/baseline --report runs/baseline-report``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from steadyval._io import atomic_write_json, atomic_write_text, check_out_dir
from steadyval.curves.measures import per_image_losses
from steadyval.curves.readers import ALIASES
from steadyval.errors import ConfigError, DataError
from steadyval.train.run import save_epoch, val_metrics

# The files a recorded run consists of; a folder holding anything else is not written into.
RECORDED_FILES = ("metrics.csv", "val_probs.npy", "val_index.csv", "run.json")


class RunRecorder:
    """Writes one run folder, one validation epoch at a time.

    ``labels`` are the val images' labels, 1 for the positive class (0/1 or booleans), in
    the order the predictions will come. ``paths`` name the images (default ``val[i]``),
    ``groups`` the patient of each, and ``metadata`` maps column names (site, device, …)
    to one value per image: loss attribution splits the swings by those columns and by class
    (named by ``class_names``, negative first).
    """

    def __init__(self, out: Path | str, labels: Sequence[Any] | np.ndarray, *,
                 paths: Sequence[str] | None = None, groups: Sequence[Any] | None = None,
                 metadata: Mapping[str, Sequence[Any]] | pd.DataFrame | None = None,
                 class_names: tuple[str, str] = ("negative", "positive"), source: str = "python") -> None:
        self.out = Path(out)
        self.labels = binary_labels(labels)
        self.source = source
        n = len(self.labels)
        index = pd.DataFrame({"path": _column("paths", paths, n) if paths is not None
                              else [f"val[{i}]" for i in range(n)],
                              "label": self.labels,
                              "label_name": [class_names[v] for v in self.labels],
                              "group": _column("groups", groups, n) if groups is not None else [""] * n})
        columns = metadata.to_dict("list") if isinstance(metadata, pd.DataFrame) else dict(metadata or {})
        for name, values in columns.items():
            if str(name) in index:
                raise ConfigError("metadata", "must not repeat the recorder's own columns "
                                  "(path, label, label_name, group)", f"a column named '{name}'",
                                  "Rename it, or pass patients as groups=.")
            index[str(name)] = [str(v) for v in _column(f"metadata['{name}']", values, n)]
        self.index = index
        self.rows: list[dict[str, float]] = []
        self.probs: list[np.ndarray] = []
        self.closed = False
        _claim_folder(self.out)
        atomic_write_text(self.out / "val_index.csv", index.to_csv(index=False))
        self._write_info("running")

    @property
    def n_val(self) -> int:
        """Number of validation images."""
        return len(self.labels)

    def log_epoch(self, probs: Any = None, *, logits: Any = None, metrics: Mapping[str, Any] | None = None,
                  epoch: int | None = None, labels: Any = None) -> dict[str, float]:
        """Record one validation pass: every val image's probability (or logit) and the epoch's metrics.

        ``probs`` / ``logits`` hold one value per val image (shape (n,) or (n, 1)), or two
        (n, 2) for a two-class softmax output, whose second column is the positive class.
        ``metrics`` are what the framework logged (loss, accuracy, lr, its own val_loss …):
        kept as given; val_loss, val_accuracy, val_auc, val_sensitivity and val_specificity
        are computed from the predictions where it did not give them. ``labels``, when the
        loop reads them with the predictions, must be the recorder's, in its order (a val set
        shuffled between epochs is refused). Returns the row written.
        """
        if self.closed:
            raise ConfigError("log_epoch", "cannot record after close()", "a closed recorder",
                              "Create a new RunRecorder for a new run.")
        if (probs is None) == (logits is None):
            raise ConfigError("log_epoch", "takes either probs or logits", "both" if probs is not None else "neither",
                              "Pass probs= (sigmoid or softmax outputs) or logits= (raw outputs).")
        if labels is not None and not np.array_equal(self.labels, binary_labels(labels)):
            raise DataError("labels", "must give the val images in the same order every epoch",
                            "labels in another order than at the first epoch",
                            "Do not shuffle the validation data.")
        p, losses = self._probabilities(probs if probs is not None else logits, logits is not None)
        row: dict[str, float] = {"epoch": len(self.rows) if epoch is None else int(epoch)}
        # Framework spellings (acc, binary_accuracy, val_acc …) under their Keras CSVLogger names.
        given = {ALIASES.get(str(k).strip().lower(), str(k)): _scalar(k, v) for k, v in (metrics or {}).items()
                 if str(k) != "epoch"}
        computed = val_metrics(p, losses, self.labels)
        row.update({k: v for k, v in computed.items() if k not in given})
        row.update(given)
        self.rows.append(row)
        self.probs.append(p.astype(np.float32))
        save_epoch(self.out, pd.DataFrame(self.rows), np.stack(self.probs))
        self._write_info("running")
        return row

    def close(self, status: str = "completed") -> None:
        """Mark the run finished (``completed``, ``interrupted`` or ``failed``)."""
        if not self.closed:
            self._write_info(status)
            self.closed = True

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close("completed" if kind is None else
                   "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed")

    def _probabilities(self, values: Any, are_logits: bool) -> tuple[np.ndarray, np.ndarray]:
        name = "logits" if are_logits else "probs"
        x = to_numpy(values).astype(np.float64)
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        elif x.ndim == 2 and x.shape[1] == 2:
            # Softmax over two logits is the sigmoid of their difference.
            x = x[:, 1] - x[:, 0] if are_logits else x[:, 1]
        if x.ndim != 1 or len(x) != self.n_val:
            raise DataError(name, f"must hold one value per val image ({self.n_val}), as (n,), (n, 1) or (n, 2)",
                            f"shape {tuple(np.shape(values))}",
                            "Predict on the same val images, in the order of the labels given to the recorder.")
        y = self.labels
        if are_logits:
            p = 1.0 / (1.0 + np.exp(-x))
            losses = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
        else:
            finite = np.isfinite(x)
            if ((x[finite] < 0) | (x[finite] > 1)).any():
                raise DataError(name, "must be probabilities in [0, 1]",
                                f"values from {np.nanmin(x[finite]):.3g} to {np.nanmax(x[finite]):.3g}",
                                "These look like logits: pass them as logits=.")
            p = x
            losses = per_image_losses(x[None, :], y)[0]
        return p, losses

    def _write_info(self, status: str) -> None:
        atomic_write_json(self.out / "run.json", {
            "status": status, "recorded_by": self.source, "n_val": self.n_val,
            "positives": int(self.labels.sum()), "epochs_run": len(self.rows)})


def _claim_folder(out: Path) -> None:
    """Refuse a folder that holds anything but a recorded run (never mix with the user's files).

    A folder holding a previous recording is reused, its files replaced (as Keras's CSVLogger
    replaces its log): re-running a training script records it afresh.
    """
    check_out_dir(out, "out")
    if out.exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in RECORDED_FILES and not p.name.startswith("."))
        if foreign:
            raise ConfigError("out", "must be a new folder or one that holds a recorded run only",
                              f"'{out}' holding {', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}",
                              "Give the recorder a folder of its own, e.g. runs/<name>.")
        for name in RECORDED_FILES:  # a re-run replaces the previous recording as a whole
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def binary_labels(labels: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Labels as a 0/1 int array (from 0/1, booleans, (n, 1) or one-hot (n, 2)); refuses anything else."""
    y = to_numpy(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == 2 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        y = y[:, 1]  # one-hot
    if y.ndim != 1 or len(y) == 0:
        raise DataError("labels", "must be one label per val image", f"shape {y.shape}",
                        "Pass a 1-D array of 0/1 labels (1 = positive class).")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
        values = sorted({str(v) for v in pd.unique(y.ravel())})[:5]
        raise DataError("labels", "must be 0/1 (1 = the positive class)", f"values {values}",
                        "Map your class names to 0/1 first, e.g. labels == 'pneumonia'.")
    return y.astype(np.int64)


def _column(name: str, values: Sequence[Any], n: int) -> list[Any]:
    values = list(to_numpy(values)) if not isinstance(values, list) else values
    if len(values) != n:
        raise DataError(name, "must have one value per val image", f"{len(values)} values for {n} labels",
                        "Pass values in the same order as the labels.")
    return values


def _scalar(name: object, value: Any) -> float:
    value = to_numpy(value)
    if value.size != 1:
        raise DataError(f"metrics['{name}']", "must be one number per epoch", f"{value.size} values",
                        "Log the epoch's aggregate (a mean), not per-batch values.")
    try:
        return float(value.reshape(-1)[0])
    except (TypeError, ValueError):
        raise DataError(f"metrics['{name}']", "must be a number", repr(value.reshape(-1)[0]),
                        "Pass the metric's value, e.g. float(loss).") from None


def to_numpy(value: Any) -> np.ndarray:
    """Arrays, lists and tensors of torch, TensorFlow or JAX as numpy (on the CPU, detached)."""
    if hasattr(value, "detach"):  # torch
        return value.detach().float().cpu().numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # TensorFlow eager tensors
        return value.numpy()
    return np.asarray(value)
