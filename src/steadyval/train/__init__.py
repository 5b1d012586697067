"""Train: Dataset + TrainConfig -> Run (trainer, models, augmentation, run directory)."""

from steadyval.train.run import Run, load_run
from steadyval.train.trainer import train

__all__ = ["Run", "load_run", "train"]
