"""The audit checks, one per file; ``ALL_CHECKS`` is the order they run in."""

from steadyval.audit.checks.class_imbalance import ClassImbalance
from steadyval.audit.checks.duplicate_leakage import DuplicateLeakage
from steadyval.audit.checks.group_leakage import GroupLeakage
from steadyval.audit.checks.image_shift import ImageShift
from steadyval.audit.checks.label_noise import LabelNoise
from steadyval.audit.checks.label_shift import LabelShift
from steadyval.audit.checks.outliers import Outliers
from steadyval.audit.checks.shortcut import Shortcut
from steadyval.audit.checks.site_shift import SiteShift
from steadyval.audit.checks.small_validation import SmallValidation
from steadyval.audit.checks.unreadable import Unreadable

ALL_CHECKS = (
    Unreadable, ClassImbalance, Outliers, Shortcut, LabelNoise, SmallValidation,
    LabelShift, SiteShift, ImageShift, GroupLeakage, DuplicateLeakage,
)

__all__ = [c.__name__ for c in ALL_CHECKS] + ["ALL_CHECKS"]
