"""Findings: what a check reports, with the stable id catalogue from DESIGN.md."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class Severity(StrEnum):
    """How much a finding should worry the user, most severe first."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for high … 3 for info; sorts most severe first."""
        return list(Severity).index(self)

    def at_least(self, other: Severity) -> bool:
        """True when this severity is ``other`` or more severe."""
        return self.rank <= other.rank


# Stable ids: add new ones, never rename (DESIGN.md, "Finding ids").
FINDING_IDS: dict[str, str] = {
    "data.unreadable": "files that could not be decoded",
    "data.class_imbalance": "minority class share small enough to matter",
    "data.label_noise": "images whose label is probably wrong",
    "data.outliers": "blank, tiny, odd-size or odd-intensity images",
    "data.shortcut": "a metadata column or simple image property predicts the label",
    "split.small_validation": "the val set is too small to resolve the changes being watched",
    "split.label_shift": "class ratio differs between train and val",
    "split.site_shift": "a metadata column is distributed differently in train and val",
    "split.image_shift": "image statistics differ between train and val",
    "split.group_leakage": "the same patient / group appears in train and val",
    "split.duplicate_leakage": "exact or near-duplicate images across train and val",
    "curves.noise_floor": "the observed fluctuation is within what the val-set size explains",
    "curves.volatile": "fluctuation beyond the noise floor",
    "model.overfitting": "val loss turns upward while train loss falls",
    "model.overcapacity": "parameters far exceed what the data supports",
    "model.bad_init": "activations/gradients explode or vanish at initialisation",
    "model.output_loss_mismatch": "the output activation and the loss disagree",
    "model.batchnorm_small_batch": "BatchNorm statistics unreliable at this batch size",
    "optim.lr_too_high": "learning rate above the stable range",
    "optim.batch_too_small": "gradient noise scale far above the batch size",
    "optim.batch_too_large": "batch far above the gradient noise scale",
    "train.nonfinite": "NaN/inf in loss or weights",
    "train.underfitting": "not converged: too few epochs or LR too low",
    "curves.val_better_than_train": "val loss stays below train loss: regularisation, or leakage",
    # Not in the DESIGN table: a check that raised is reported, not hidden.
    "check.failed": "a check raised an error; the other checks went on",
}

REMEDY_IDS: tuple[str, ...] = (
    "split.rebalance", "data.dedupe", "data.drop_label_issues", "loss.class_weights",
    "sampler.balanced", "aug.geometric", "aug.intensity", "reg.dropout", "reg.weight_decay",
    "model.smaller", "model.batchnorm", "optim.lower_lr", "optim.schedule", "optim.larger_batch",
    "optim.smaller_batch", "optim.grad_clip", "stop.early", "avg.ema", "eval.kfold", "train.longer",
)


@dataclass
class Finding:
    """One thing steadyval found, with the numbers and samples behind it."""

    id: str
    severity: Severity
    title: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    remedies: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Internal contract, not user input: a typo here is a programming error.
        if self.id not in FINDING_IDS:
            raise ValueError(f"unknown finding id {self.id!r}")
        unknown = [r for r in self.remedies if r not in REMEDY_IDS]
        if unknown:
            raise ValueError(f"unknown remedy ids {unknown}")
        self.severity = Severity(self.severity)

    def to_dict(self) -> dict[str, Any]:
        """The ``findings.json`` shape of this finding."""
        d = asdict(self)
        d["severity"] = self.severity.value
        return d


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first; stable within a severity."""
    return sorted(findings, key=lambda f: f.severity.rank)


class FindingSource:
    """What every check shares: a catalogued ``id``, its remedies, and a finding factory.

    A subclass that forgets its id, or names one that is not in the catalogue, is refused
    when the class is defined, not when it first runs; bases declare ``abstract=True``.
    """

    id: ClassVar[str]
    remedies: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not abstract and getattr(cls, "id", None) not in FINDING_IDS:
            raise TypeError(f"{cls.__name__} must set `id` to a finding id, got {getattr(cls, 'id', None)!r}")

    def finding(self, severity: Severity, title: str, message: str, evidence: dict[str, Any],
                samples: list[str] | None = None) -> Finding:
        """A finding with this check's id and remedies."""
        return Finding(self.id, severity, title, message, evidence, samples or [], list(self.remedies))

    def missing(self, ctx: Any) -> str | None:
        """Why this check cannot run on ``ctx``, or None when it can."""
        return None

    def run(self, ctx: Any) -> list[Finding]:
        """This check's findings on ``ctx`` (empty when nothing is wrong)."""
        raise NotImplementedError


def run_isolated(sources: Sequence[FindingSource], ctx: Any, *, label: str = "checking",
                 progress: bool = False, key: Callable[[FindingSource], str] = lambda s: s.id,
                 ) -> tuple[list[Finding], dict[str, str], dict[str, float]]:
    """Run each source on ``ctx``: findings (most severe first), skipped sources, seconds each.

    A source whose inputs are missing is skipped with its reason; one that raises becomes a
    ``check.failed`` info finding and the others go on.
    """
    from steadyval._progress import progress_bar

    findings: list[Finding] = []
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}
    with progress_bar(len(sources), label, progress) as advance:
        for source in sources:
            name = key(source)
            reason = source.missing(ctx)
            if reason:
                skipped[name] = reason
                advance()
                continue
            start = time.perf_counter()
            try:
                findings.extend(source.run(ctx))
            except Exception as exc:  # isolation: one broken check must not hide the others
                findings.append(Finding(
                    "check.failed", Severity.INFO, f"The {name} check failed",
                    f"{type(exc).__name__}: {exc}. The other checks ran; please report this.",
                    {"check": name, "traceback": traceback.format_exc(limit=3)}))
            seconds[name] = time.perf_counter() - start
            advance()
    return sort_findings(findings), skipped, seconds
