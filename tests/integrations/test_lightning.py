"""The Lightning callback on a real (tiny) Lightning fit; skipped without lightning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from steadyval.curves import read_log

pl = pytest.importorskip("lightning.pytorch", reason="lightning is not installed (pip install lightning)")
from steadyval.integrations.lightning import SteadyvalCallback  # noqa: E402


class _Module(pl.LightningModule):
    def __init__(self, return_logits: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
        self.return_logits = return_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

    def _xy(self, batch: object) -> tuple[torch.Tensor, torch.Tensor]:
        return (batch["image"], batch["label"]) if isinstance(batch, dict) else (batch[0], batch[1])

    def training_step(self, batch: object, batch_idx: int) -> torch.Tensor:
        x, y = self._xy(batch)
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: object, batch_idx: int) -> object:
        x, y = self._xy(batch)
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y), batch_size=len(y))
        return {"logits": logits} if self.return_logits else None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


class _Dicts(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.x[i], "label": self.y[i]}


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g).float()
    return torch.randn(n, 8, generator=g) + 0.8 * y[:, None], y


@pytest.mark.parametrize(("return_logits", "dicts"), [(True, False), (False, True)])
def test_every_val_probability_is_recorded_with_the_logged_metrics(tmp_path: Path, return_logits: bool,
                                                                   dicts: bool) -> None:
    (x, y), (xv, yv) = _data(256, 0), _data(100, 1)
    wrap = _Dicts if dicts else TensorDataset
    module = _Module(return_logits)
    callback = SteadyvalCallback(tmp_path / "run", metadata={"site": ["a"] * 50 + ["b"] * 50})
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
    trainer.fit(module, DataLoader(wrap(x, y), batch_size=32, shuffle=True),
                DataLoader(wrap(xv, yv), batch_size=32))
    history = read_log(tmp_path / "run")
    assert history.per_image and history.n_epochs == 3  # the sanity-check pass is not an epoch
    with torch.no_grad():
        expected = torch.sigmoid(module(xv)).numpy()
    np.testing.assert_allclose(history.val_probs[-1], expected, rtol=1e-5, atol=1e-6)
    # Lightning's epoch val_loss (batch-size weighted) and the one from the recorded probabilities agree.
    losses = -(yv.numpy() * np.log(history.val_probs) + (1 - yv.numpy()) * np.log(1 - history.val_probs))
    np.testing.assert_allclose(history.column("val_loss"), losses.mean(axis=1), rtol=1e-4)
    assert np.isfinite(history.column("loss")).all() and history.column("lr")[0] == pytest.approx(0.01)
    assert "train_loss_step" not in history.metrics
    assert "status: completed" in history.notes[0]


def test_epochs_without_validation_are_not_recorded(tmp_path: Path) -> None:
    (x, y), (xv, yv) = _data(128, 0), _data(60, 1)
    trainer = pl.Trainer(max_epochs=4, check_val_every_n_epoch=2, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, callbacks=[SteadyvalCallback(tmp_path / "run")])
    trainer.fit(_Module(True), DataLoader(TensorDataset(x, y), batch_size=32), DataLoader(TensorDataset(xv, yv)))
    history = read_log(tmp_path / "run")
    assert history.metrics["epoch"].tolist() == [1, 3] and history.val_probs.shape == (2, 60)
