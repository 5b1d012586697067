from steadyval.config import TrainConfig
from steadyval.experiments.remedies import (
    NOT_TRIALLED,
    REMEDIES,
    Hints,
    SplitChange,
    apply_remedies,
    trains,
    trialable,
)
from steadyval.findings import REMEDY_IDS


def test_every_catalogued_remedy_is_trialable_or_says_why_not():
    assert set(REMEDIES) | set(NOT_TRIALLED) == set(REMEDY_IDS)


def test_config_remedies_change_what_they_say():
    base = TrainConfig(model="small_cnn", optimizer="adam", lr=0.01, batch_size=8)
    hints = Hints(n_train=400)
    expect = {
        "loss.class_weights": {"class_weights": True}, "sampler.balanced": {"sampler": "balanced"},
        "aug.geometric": {"augment": "geometric"}, "aug.intensity": {"augment": "intensity"},
        "reg.dropout": {"dropout": 0.5}, "reg.weight_decay": {"optimizer": "adamw", "weight_decay": 5e-4},
        "model.smaller": {"width": 0.5}, "model.batchnorm": {"batchnorm": True},
        "optim.lower_lr": {"lr": 0.001}, "optim.schedule": {"schedule": "warmup_cosine"},
        "optim.larger_batch": {"batch_size": 32}, "optim.smaller_batch": {"batch_size": 2},
        "optim.grad_clip": {"grad_clip": 1.0},
        "stop.early": {"early_stopping": True, "restore_best": True}, "avg.ema": {"ema": 0.99},
        "train.longer": {"epochs": 40},
    }
    for rid, changes in expect.items():
        cfg, split = apply_remedies([rid], base, hints)
        assert split.is_identity, rid
        for key, value in changes.items():
            assert getattr(cfg, key) == value, (rid, key)


def test_lower_lr_uses_the_range_test_when_it_is_lower():
    cfg, _ = apply_remedies(["optim.lower_lr"], TrainConfig(optimizer="sgd", lr=0.5), Hints(lr_suggested=0.02))
    assert cfg.lr == 0.02


def test_split_remedies_and_combinations():
    hints = Hints(metadata=["site"], duplicate_val_paths=["v1.png"], label_issue_paths=["t1.png"])
    cfg, change = apply_remedies(["split.rebalance", "data.dedupe", "aug.intensity"], TrainConfig(), hints)
    assert change == SplitChange(rebalance=True, by=("site",), drop_val=("v1.png",))
    assert cfg.augment == "intensity"
    assert not trialable("data.dedupe", TrainConfig(), Hints())  # nothing to de-duplicate
    assert not trialable("reg.dropout", TrainConfig(model="cnn_dropout"), Hints())  # already has 0.5
    assert not trialable("eval.kfold", TrainConfig(), Hints())


def test_the_remedies_that_change_the_val_set_say_how():
    changes_val = {r.id for r in REMEDIES.values() if r.val_set}
    assert changes_val == {"split.rebalance", "data.dedupe"}  # dropping train images leaves val alone


def test_only_early_stopping_trains_nothing():
    cfg, hints = TrainConfig(), Hints(metadata=("site",), duplicate_val_paths=("a.png",), n_train=400)
    free = [r for r in REMEDIES if trialable(r, cfg, hints) and not trains(r, cfg, hints)]
    assert free == ["stop.early"]


def test_a_resplit_that_changes_nothing_does_not_apply_and_says_why():
    from steadyval.experiments.remedies import why_not

    assert trialable("split.rebalance", TrainConfig(), Hints(metadata=("site",)))
    assert not trialable("split.rebalance", TrainConfig(), Hints(resplit_same=True))
    assert "exactly the current train/val split" in why_not("split.rebalance")
    assert why_not("reg.dropout") == "does not apply to this config or data"
