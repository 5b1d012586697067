"""The curve checks, one per file; ``ALL_CURVE_CHECKS`` is the order they run in."""

from steadyval.curves.checks.logged_accuracy import LoggedAccuracyMismatch
from steadyval.curves.checks.lr_too_high import LrTooHigh
from steadyval.curves.checks.noise_floor import NoiseFloor
from steadyval.curves.checks.nonfinite import Nonfinite
from steadyval.curves.checks.output_loss_mismatch import OutputLossMismatch
from steadyval.curves.checks.overfitting import Overfitting
from steadyval.curves.checks.underfitting import Underfitting
from steadyval.curves.checks.val_better_than_train import ValBetterThanTrain
from steadyval.curves.checks.volatile import Volatile

ALL_CURVE_CHECKS = (Nonfinite, NoiseFloor, Volatile, Overfitting, Underfitting, LrTooHigh,
                    OutputLossMismatch, LoggedAccuracyMismatch, ValBetterThanTrain)

__all__ = [c.__name__ for c in ALL_CURVE_CHECKS] + ["ALL_CURVE_CHECKS"]
