"""Probes: cheap experiments on the model and optimiser, each a finding source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from steadyval.config import TrainConfig
from steadyval.data import Dataset
from steadyval.findings import Finding, FindingSource, run_isolated
from steadyval.train.models import build_model
from steadyval.train.trainer import Tensors, _optimizer, prepare_tensors, resolve_device


class ProbeContext:
    """The dataset and config under test, with the training tensors prepared once.

    ``trained`` are weight files of models already trained with this config on this split
    (the doctor's baseline seeds), for probes that measure a trained model's behaviour.
    """

    def __init__(self, dataset: Dataset, config: TrainConfig, trained: Sequence[Path] = ()) -> None:
        self.dataset = dataset
        self.config = config
        self.trained = tuple(trained)
        self.device = resolve_device(config.device)
        # Results one probe computes and another reuses, by name (the gradient noise scale).
        self.memo: dict[str, object] = {}

    @cached_property
    def tensors(self) -> Tensors:
        """Train/val uint8 tensors on the device and the normalisation."""
        return prepare_tensors(self.dataset, self.config, self.device)

    def model(self, seed: int | None = None, config: TrainConfig | None = None) -> nn.Module:
        """A freshly initialised model of the config (or an override), on the device."""
        cfg = (config or self.config).model_copy(update={"seed": self.config.seed if seed is None else seed})
        return build_model(cfg, self.tensors.x_train.shape[1]).to(self.device, memory_format=torch.channels_last)

    def optimizer(self, model: nn.Module, lr: float | None = None) -> torch.optim.Optimizer:
        """The config's optimiser for ``model`` (optionally at another learning rate)."""
        cfg = self.config if lr is None else self.config.model_copy(update={"lr": lr})
        return _optimizer(model, cfg)

    def trained_model(self, weights: Path) -> nn.Module:
        """The config's model with the weights in ``weights`` loaded."""
        model = self.model()
        model.load_state_dict(torch.load(weights, map_location=self.device, weights_only=True))
        return model

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images and labels of training rows ``idx``."""
        t = self.tensors
        idx = idx.to(t.x_train.device)
        return t.normalised(t.x_train[idx]), t.y_train[idx]


class Probe(FindingSource, abstract=True):
    """One probe: declares its finding id; runs a small experiment; returns findings."""

    needs: ClassVar[tuple[str, ...]] = ()




@dataclass
class ProbeResult:
    """What the probes found, which did not apply, and how long each took."""

    findings: list[Finding]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def run_probes(dataset: Dataset, config: TrainConfig, probes: list[Probe], progress: bool = False,
               trained: Sequence[Path] = ()) -> ProbeResult:
    """Run ``probes``; one that raises becomes a ``check.failed`` info finding."""
    findings, skipped, seconds = run_isolated(probes, ProbeContext(dataset, config, trained), label="probing",
                                              progress=progress, key=lambda p: type(p).__name__)
    return ProbeResult(findings, skipped, seconds)
