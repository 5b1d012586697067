"""The probes, one per file; ``ALL_PROBES`` is the order they run in (cheapest first)."""

from steadyval.diagnose.probes.batch_too_large import BatchTooLarge
from steadyval.diagnose.probes.batchnorm_check import BatchNormCheck
from steadyval.diagnose.probes.capacity import Capacity
from steadyval.diagnose.probes.gradient_noise_scale import GradientNoiseScale
from steadyval.diagnose.probes.init_check import InitCheck
from steadyval.diagnose.probes.lr_range_test import LrRangeTest

ALL_PROBES = (Capacity, InitCheck, BatchNormCheck, LrRangeTest, GradientNoiseScale, BatchTooLarge)

__all__ = [p.__name__ for p in ALL_PROBES] + ["ALL_PROBES"]
