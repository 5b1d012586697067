"""A Lightning callback that records every val image's probability at every epoch.

    from steadyval.integrations.lightning import SteadyvalCallback

    trainer = L.Trainer(max_epochs=30, callbacks=[SteadyvalCallback("runs/baseline", metadata={"site": sites})])

then ``steadyval analyze runs/baseline``. Predictions come from what ``validation_step``
returns when it is a dict with ``logits`` or ``probs`` (no extra cost); otherwise the
callback runs the module on each val batch once more (``pl_module(x)``, taken as logits
unless ``from_logits=False``). Batches are ``(x, y, …)`` tuples or dicts (MONAI style,
``image`` and ``label`` keys by default). The val dataloader must not shuffle: the same
images in the same order every epoch, as ``paths`` and ``metadata`` describe them.
Single-process only (one device): under DDP each process sees part of the val set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    import pytorch_lightning as pl  # type: ignore[no-redef]

from steadyval.errors import ConfigError, DataError
from steadyval.integrations.recorder import RunRecorder, to_numpy


class SteadyvalCallback(pl.Callback):
    """Writes a run folder for ``steadyval analyze``: the logged metrics plus every val image's probability."""

    def __init__(self, out: Path | str, *, paths: Sequence[str] | None = None, groups: Sequence[Any] | None = None,
                 metadata: Mapping[str, Sequence[Any]] | pd.DataFrame | None = None,
                 class_names: tuple[str, str] = ("negative", "positive"), from_logits: bool = True,
                 image_key: str = "image", label_key: str = "label") -> None:
        super().__init__()
        self.out = Path(out)
        self.describe = {"paths": paths, "groups": groups, "metadata": metadata, "class_names": class_names}
        self.from_logits = from_logits
        self.keys = (image_key, label_key)
        self.recorder: RunRecorder | None = None
        self._outputs: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._pending: tuple[np.ndarray, np.ndarray, bool] | None = None
        self._are_logits = from_logits

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Refuse multi-process runs, where each process sees only part of the val set."""
        if trainer.world_size > 1:
            raise ConfigError("SteadyvalCallback", "records the val set of a single process",
                              f"a run on {trainer.world_size} processes",
                              "Record a run on one device (devices=1), or validate on rank 0 only.")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start collecting this validation pass."""
        self._outputs, self._labels = [], []

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Keep the batch's predictions and labels (the first val dataloader only)."""
        if trainer.sanity_checking or dataloader_idx != 0:
            return
        x, y = self._split(batch)
        if isinstance(outputs, Mapping) and ("logits" in outputs or "probs" in outputs):
            self._are_logits = "logits" in outputs
            predicted = outputs["logits" if self._are_logits else "probs"]
        else:
            self._are_logits = self.from_logits
            with torch.no_grad():
                predicted = pl_module(x)
        labels = to_numpy(y)
        self._outputs.append(to_numpy(predicted).reshape(len(labels), -1))
        self._labels.append(labels)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Hold the pass until the training epoch ends, when its metrics are all logged."""
        if trainer.sanity_checking or not self._outputs:
            return
        self._pending = (np.concatenate(self._outputs), np.concatenate(self._labels), self._are_logits)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record the epoch: the last validation pass and every metric logged for the epoch."""
        if self._pending is None:
            return  # no validation this epoch (check_val_every_n_epoch)
        outputs, labels, are_logits = self._pending
        self._pending = None
        if self.recorder is None:
            self.recorder = RunRecorder(self.out, labels, source=f"lightning {pl.__version__}", **self.describe)
        metrics = _epoch_metrics(trainer)
        if are_logits:
            self.recorder.log_epoch(logits=outputs, metrics=metrics, epoch=trainer.current_epoch, labels=labels)
        else:
            self.recorder.log_epoch(probs=outputs, metrics=metrics, epoch=trainer.current_epoch, labels=labels)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Mark the recorded run completed."""
        if self.recorder is not None:
            self.recorder.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Leave the folder readable, marked interrupted or failed."""
        if self.recorder is not None:
            self.recorder.close("interrupted" if isinstance(exception, KeyboardInterrupt) else "failed")

    def _split(self, batch: Any) -> tuple[Any, Any]:
        if isinstance(batch, Mapping):
            missing = [k for k in self.keys if k not in batch]
            if missing:
                raise DataError("val batch", f"must hold the keys {list(self.keys)}", f"keys {list(batch)}",
                                "Name them with SteadyvalCallback(image_key=..., label_key=...).")
            return batch[self.keys[0]], batch[self.keys[1]]
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            return batch[0], batch[1]
        raise DataError("val batch", "must be an (x, y, …) tuple or a dict", type(batch).__name__,
                        "Return (images, labels) from the val dataset.")


def _epoch_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """The epoch-level metrics logged so far, under their plain names, and the learning rate."""
    metrics: dict[str, float] = {}
    for key, value in trainer.callback_metrics.items():
        if key.endswith("_step") or not hasattr(value, "numel") or value.numel() != 1:
            continue
        metrics[key.removesuffix("_epoch")] = float(value)
    if trainer.optimizers:
        metrics.setdefault("lr", float(trainer.optimizers[0].param_groups[0]["lr"]))
    return metrics

