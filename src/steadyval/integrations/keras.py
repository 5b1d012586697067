"""A Keras callback that records every val image's probability at every epoch (Keras 3, any backend).

    from steadyval.integrations.keras import SteadyvalCallback

    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=30,
              callbacks=[SteadyvalCallback("runs/baseline", (x_val, y_val), metadata={"site": val_sites})])

then ``steadyval analyze runs/baseline``. Keras's own validation pass reports only
aggregates, so the callback predicts the val images once more after each epoch: about one
extra validation pass per epoch (a forward pass, no gradients). The model must have one
sigmoid output (or two softmax outputs, the second the positive class); logits are
recognised from the loss's ``from_logits``, else from values outside [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from steadyval.errors import DataError
from steadyval.integrations.recorder import RunRecorder


class SteadyvalCallback(keras.callbacks.Callback):
    """Writes a run folder for ``steadyval analyze``: Keras's logs plus every val image's probability.

    ``validation_data`` is ``(x, y)`` arrays, or a dataset of ``(x, y)`` batches in a fixed
    order (a ``tf.data.Dataset`` or ``keras.utils.PyDataset`` that does not shuffle).
    ``paths``, ``groups``, ``metadata`` and ``class_names`` describe the val images, as for
    :class:`RunRecorder`.
    ``from_logits`` overrides what is read from the model's loss.
    """

    def __init__(self, out: Path | str, validation_data: Any, *, paths: Sequence[str] | None = None,
                 groups: Sequence[Any] | None = None,
                 metadata: Mapping[str, Sequence[Any]] | pd.DataFrame | None = None,
                 class_names: tuple[str, str] = ("negative", "positive"), from_logits: bool | None = None,
                 batch_size: int = 256) -> None:
        super().__init__()
        self.out = Path(out)
        self.validation_data = validation_data
        self.describe = {"paths": paths, "groups": groups, "metadata": metadata, "class_names": class_names}
        self.from_logits = from_logits
        self.batch_size = batch_size
        self.recorder: RunRecorder | None = None

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        """With (x, y) arrays, claim the folder and check the description before the first epoch."""
        arrays = _arrays(self.validation_data)
        if arrays is not None:
            self.recorder = RunRecorder(self.out, np.asarray(arrays[1]), source=f"keras {keras.__version__}",
                                        **self.describe)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Predict the val images and record them with the epoch's logs."""
        outputs, labels = self._predict()
        if self.recorder is None:
            self.recorder = RunRecorder(self.out, labels, source=f"keras {keras.__version__}", **self.describe)
        logits = self.from_logits if self.from_logits is not None else _loss_from_logits(self.model)
        if logits is None:
            finite = outputs[np.isfinite(outputs)]
            logits = bool(len(finite)) and bool((finite < 0).any() or (finite > 1).any())
        lr = _learning_rate(self.model)
        metrics = {**({"lr": lr} if lr is not None else {}), **dict(logs or {})}
        if logits:
            self.recorder.log_epoch(logits=outputs, metrics=metrics, epoch=epoch, labels=labels)
        else:
            self.recorder.log_epoch(probs=outputs, metrics=metrics, epoch=epoch, labels=labels)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        """Mark the recorded run completed."""
        if self.recorder is not None:
            self.recorder.close()

    def _predict(self) -> tuple[np.ndarray, np.ndarray]:
        arrays = _arrays(self.validation_data)
        if arrays is not None:
            x, y = arrays
            return np.asarray(self.model.predict(x, batch_size=self.batch_size, verbose=0)), np.asarray(y)
        outputs, labels = [], []
        for batch in _batches(self.validation_data):
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise DataError("validation_data", "must yield (x, y) batches",
                                type(batch).__name__, "Give (x_val, y_val) arrays or a dataset of (x, y).")
            outputs.append(np.asarray(self.model.predict_on_batch(batch[0])))
            labels.append(np.asarray(batch[1]))
        if not outputs:
            raise DataError("validation_data", "must hold at least one batch", "an empty dataset",
                            "Pass the validation data the model is evaluated on.")
        return np.concatenate(outputs), np.concatenate(labels)


def _arrays(data: Any) -> tuple[Any, Any] | None:
    """(x, y) of validation data given as arrays ((x, y) or (x, y, sample_weight)); None for a dataset."""
    return (data[0], data[1]) if isinstance(data, (tuple, list)) and len(data) in (2, 3) else None


def _batches(data: Any) -> Iterable[Any]:
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not hasattr(data, "as_numpy_iterator"):
        return (data[i] for i in range(len(data)))  # keras.utils.PyDataset / Sequence
    return iter(data)


def _loss_from_logits(model: Any) -> bool | None:
    """Whether the model's loss takes logits: True/False when it says, None when it does not."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, str):
        return False  # "binary_crossentropy" and friends take probabilities
    if hasattr(loss, "from_logits"):
        return bool(loss.from_logits)
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    return bool(config["from_logits"]) if isinstance(config, dict) and "from_logits" in config else None


def _learning_rate(model: Any) -> float | None:
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None
