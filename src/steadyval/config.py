"""TrainConfig: the validated training configuration (flat keys, so ``--set k=v`` stays simple).

Sources, later ones winning: a preset (``preset: seed-ex1``), a ``--config`` file (YAML or
TOML), then repeated ``--set key=value``. Unknown keys and bad values are refused with
a message that names the key, the rule and the value, and suggests the nearest key.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from steadyval.errors import ConfigError, did_you_mean

AUGMENTS = ("none", "geometric", "intensity", "geometric+intensity")
# The fields that decide only when a run stops and which weights it keeps: two configs that
# differ in nothing else train the same epochs (see steadyval.train.replay).
STOPPING_FIELDS = frozenset({"early_stopping", "monitor", "patience", "smoothing", "restore_best"})


class TrainConfig(BaseModel):
    """Everything that defines one training run; saved with every run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    model: Literal["small_cnn", "cnn_dropout", "resnet18", "densenet121"] = "cnn_dropout"
    width: float = Field(1.0, gt=0, le=8, description="channel multiplier of the model")
    image_size: int = Field(64, ge=16, le=1024, description="pixels (square)")
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd only")
    batch_size: int = Field(32, ge=1, le=65536)
    epochs: int = Field(20, ge=1, le=10000)
    weight_decay: float = Field(0.0, ge=0, le=1)
    dropout: float | None = Field(None, ge=0, lt=1, description="None = the model's own default")
    batchnorm: bool = False
    bn_momentum: float = Field(0.1, gt=0, le=1, description="PyTorch convention (Keras 0.99 = 0.01 here)")
    init: Literal["default", "kaiming", "xavier", "orthogonal", "normal_large"] = "default"
    augment: str = "none"
    class_weights: bool = False
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    schedule: Literal["none", "warmup_cosine", "onecycle", "plateau"] = "none"
    warmup_epochs: int = Field(0, ge=0)
    early_stopping: bool = False
    monitor: Literal["val_loss", "val_auc", "val_accuracy"] = "val_loss"
    patience: int = Field(5, ge=1)
    smoothing: float = Field(0.0, ge=0, lt=1, description="EMA factor applied to the monitored metric")
    restore_best: bool = True
    ema: float = Field(0.0, ge=0, lt=1, description="EMA decay of the weights per step; 0 = off")
    grad_clip: float = Field(0.0, ge=0, description="max gradient norm; 0 = off")
    seed: int = Field(0, ge=0)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 mixed precision where the hardware has it natively, else fp32")

    @field_validator("augment")
    @classmethod
    def _augment(cls, value: str) -> str:
        value = value.strip().lower().replace(",", "+").replace(" ", "")
        if value in ("", "false", "0"):
            value = "none"
        if value == "intensity+geometric":
            value = "geometric+intensity"
        if value not in AUGMENTS:
            raise ValueError(f"must be one of {', '.join(AUGMENTS)}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda", "mps") and not value.startswith("cuda:"):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return value


# The three recipes of the seed examples (Keras tutorials users start from).
PRESETS: dict[str, dict[str, Any]] = {
    # Ex. 1: Conv32-Pool-Flatten-Dense, geometric augmentation, class weights.
    "seed-ex1": {"model": "small_cnn", "augment": "geometric", "class_weights": True,
                 "optimizer": "adam", "lr": 1e-3, "batch_size": 32, "epochs": 20},
    # Ex. 2: Conv32-Pool-Conv64-Pool-Flatten-Dropout(0.5)-Dense.
    "seed-ex2": {"model": "cnn_dropout", "dropout": 0.5, "optimizer": "adam", "lr": 1e-3,
                 "batch_size": 32, "epochs": 20},
    # Ex. 3: the Ex. 2 network with BatchNorm; the original fed sigmoid outputs to a loss
    # expecting logits. Here the output is a logit and the loss is BCE-with-logits.
    "seed-ex3": {"model": "cnn_dropout", "dropout": 0.5, "batchnorm": True, "optimizer": "adam",
                 "lr": 1e-3, "batch_size": 32, "epochs": 20},
}
KEYS = tuple(TrainConfig.model_fields)


def load_config(config_file: Path | str | None = None, sets: list[str] | None = None,
                base: dict[str, Any] | None = None) -> TrainConfig:
    """Build a TrainConfig from ``base``, a YAML/TOML file and ``key=value`` overrides."""
    values: dict[str, Any] = dict(base or {})
    if config_file is not None:
        values.update(_read_file(Path(config_file)))
    for item in sets or []:
        if "=" not in item:
            raise ConfigError("--set", "takes key=value", f"'{item}'", "Write e.g. --set lr=0.01.")
        key, value = item.split("=", 1)
        values[key.strip()] = value.strip()
    preset = values.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError("preset", "must name a known preset", f"'{preset}'",
                              did_you_mean(str(preset), PRESETS))
        values = {**PRESETS[preset], **values}
    return validate(values)


def validate(values: dict[str, Any]) -> TrainConfig:
    """TrainConfig from a dict, with errors in steadyval's shape."""
    for key in values:
        if key not in KEYS:
            raise ConfigError(f"config key '{key}'", "must be a TrainConfig key", f"'{key}'",
                              did_you_mean(key, KEYS))
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"The '{key}' parameter of TrainConfig", first["msg"].rstrip(".").lower(),
            repr(values.get(key, first.get("input"))), _hint(key),
        ) from None


def _hint(key: str) -> str:
    field = TrainConfig.model_fields.get(key)
    if field is None:
        return ""
    default = field.default
    return f"The default is {default!r}." + (f" ({field.description})" if field.description else "")


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"--config '{path}'", "must be an existing YAML or TOML file",
                          "a path that does not exist", "Check the path.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"--config '{path}'", "must end in .yaml, .yml, .toml or .json",
                              f"'{path.suffix}'", "Rename the file.")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--config '{path}'", "must parse", str(exc), "Fix the syntax.") from None
    except Exception as exc:  # yaml.YAMLError and friends
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"--config '{path}'", "must parse as YAML", str(exc).splitlines()[0],
                          "Fix the syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config '{path}'", "must hold a mapping of key: value",
                          type(data).__name__, "Write one key per line, e.g. lr: 0.001.")
    return data


def training_fields(config: TrainConfig) -> dict[str, Any]:
    """``config`` without its stopping fields: what decides the epochs a run trains."""
    return config.model_dump(mode="json", exclude=set(STOPPING_FIELDS))


def lineage_fields(config: TrainConfig) -> dict[str, Any]:
    """``config`` without ``epochs``: equal for a run and its continuation for more epochs."""
    return config.model_dump(mode="json", exclude={"epochs"})


def same_training(a: TrainConfig, b: TrainConfig) -> bool:
    """True when ``a`` and ``b`` train identically epoch by epoch, differing at most in when to stop."""
    return training_fields(a) == training_fields(b)
