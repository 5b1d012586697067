"""The networks a TrainConfig can name; every one ends in a single logit."""

from __future__ import annotations

import torch
from torch import nn

from steadyval.config import TrainConfig
from steadyval.train.block import SmallCNN
from steadyval.train.conv import Conv2d
from steadyval.train.dropout import MaskDropout
from steadyval.train.pool import MaxPool2d


def build_model(config: TrainConfig, in_channels: int) -> nn.Module:
    """A freshly initialised network for ``config`` taking (B, in_channels, S, S) images."""
    torch.manual_seed(config.seed)
    if config.model in ("small_cnn", "cnn_dropout"):
        model: nn.Module = _small_cnn(config, in_channels)
    elif config.model == "resnet18":
        from monai.networks.nets import resnet18

        model = resnet18(spatial_dims=2, n_input_channels=in_channels, num_classes=1,
                         widen_factor=config.width)
    else:
        from monai.networks.nets import DenseNet121

        model = DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=1,
                            growth_rate=max(4, round(32 * config.width)),
                            dropout_prob=config.dropout or 0.0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = config.bn_momentum
    _initialise(model, config.init)
    return model


def _small_cnn(config: TrainConfig, in_channels: int) -> SmallCNN:
    """Ex. 1: Conv32-Pool-Flatten-Dense; Ex. 2: Conv32-Pool-Conv64-Pool-Flatten-Dropout-Dense."""
    widths = [32] if config.model == "small_cnn" else [32, 64]
    default_dropout = 0.0 if config.model == "small_cnn" else 0.5
    dropout = default_dropout if config.dropout is None else config.dropout
    layers: list[nn.Module] = []
    channels, size = in_channels, config.image_size
    for w in widths:
        out = max(1, round(w * config.width))
        layers.append(Conv2d(channels, out, 3, bias=not config.batchnorm))
        if config.batchnorm:
            layers.append(nn.BatchNorm2d(out))
        # Pool, then ReLU: the same function and gradient as Keras's Conv(relu) -> MaxPool
        # (max and ReLU commute exactly, ReLU being monotone), with the ReLU and its backward
        # on a quarter of the values. Measured 1.2x per training step at 64 px here (CPU time,
        # six alternating pairs). The ReLU is fused into the pooling (pool.py); the Identity
        # keeps the layer indices, so the state-dict keys are those of earlier versions.
        layers += [MaxPool2d(2, relu=True), nn.Identity()]
        channels, size = out, (size - 2) // 2
    layers.append(nn.Flatten())
    if dropout > 0:
        layers.append(MaskDropout(dropout))
    layers.append(nn.Linear(channels * size * size, 1))
    return SmallCNN(*layers)  # the first block fused where it can be (block.py)


def _initialise(model: nn.Module, scheme: str) -> None:
    if scheme == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif scheme == "orthogonal":
                nn.init.orthogonal_(m.weight)
            elif scheme == "normal_large":
                # Deliberately bad (std 1 regardless of fan-in): for the init probe's tests.
                nn.init.normal_(m.weight, std=1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
