"""TrainConfig: sources, presets, and errors that name the key, the rule and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from steadyval.config import PRESETS, load_config
from steadyval.errors import ConfigError


def test_sets_override_file_which_overrides_preset(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("preset: seed-ex1\nlr: 0.01\nepochs: 7\n")
    cfg = load_config(tmp_path / "c.yaml", ["epochs=3", "augment=intensity,geometric"])
    assert (cfg.model, cfg.class_weights, cfg.lr, cfg.epochs) == ("small_cnn", True, 0.01, 3)
    assert cfg.augment == "geometric+intensity"
    (tmp_path / "c.toml").write_text('model = "resnet18"\nbatchnorm = true\n')
    assert load_config(tmp_path / "c.toml").model == "resnet18"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_are_valid(preset: str) -> None:
    assert load_config(sets=[f"preset={preset}"]).epochs >= 1


@pytest.mark.parametrize(("sets", "message"), [
    (["lrr=0.1"], r"config key 'lrr'.*Did you mean 'lr'"),
    (["lr=-3"], r"The 'lr' parameter of TrainConfig: input should be greater than 0. Got '-3'"),
    (["model=resnet"], r"The 'model' parameter.*Got 'resnet'"),
    (["augment=rotate"], r"'augment'.*geometric"),
    (["preset=seed-ex9"], r"Did you mean 'seed-ex\d'"),
    (["lr"], r"--set: takes key=value"),
])
def test_bad_values_are_refused_with_the_rule(sets: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(sets=sets)


def test_bad_config_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
