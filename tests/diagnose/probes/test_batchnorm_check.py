from steadyval.config import load_config
from steadyval.diagnose.base import run_probes
from steadyval.diagnose.probes.batchnorm_check import BatchNormCheck
from steadyval.findings import Severity


def test_tiny_batches_make_deep_batchnorm_noisy(tiny) -> None:
    noisy = run_probes(tiny, load_config(sets=["model=resnet18", "image_size=32", "batch_size=2"]), [BatchNormCheck()])
    assert [f.id for f in noisy.findings] == ["model.batchnorm_small_batch"]
    assert noisy.findings[0].severity.at_least(Severity.MEDIUM)
    assert noisy.findings[0].evidence["worst_layer"].startswith("layer4")
    fine = run_probes(tiny, load_config(sets=["model=resnet18", "image_size=32", "batch_size=32"]), [BatchNormCheck()])
    assert fine.findings == []


def test_models_without_batchnorm_are_skipped_with_the_reason(tiny) -> None:
    result = run_probes(tiny, load_config(sets=["preset=seed-ex2", "image_size=32"]), [BatchNormCheck()])
    assert result.skipped == {"BatchNormCheck": "the model has no BatchNorm"}


def test_noisy_statistics_that_do_not_move_val_loss_are_only_low(tiny, tmp_path) -> None:
    # A trained resnet's val loss barely moves when its running statistics are re-estimated
    # from batches of 2 (measured 0.2-1.0x the sampling error): the setup alone says medium.
    # (Trained at batch 16: one epoch at batch 2 costs 10 s here for the same weights' role.)
    from steadyval.train.trainer import train

    cfg = load_config(sets=["model=resnet18", "image_size=32", "batch_size=2", "width=0.25"])
    train(tiny, cfg.model_copy(update={"batch_size": 16, "epochs": 2}), tmp_path / "run")
    result = run_probes(tiny, cfg, [BatchNormCheck()], trained=[tmp_path / "run" / "last.pt"])
    [finding] = result.findings
    jitter = finding.evidence["jitter"][0]
    assert jitter["val_loss_sampling_se"] > 0
    assert finding.evidence["jitter_ratio"] == jitter["ratio"] < 1.0
    assert finding.severity == Severity.LOW
    assert "not what makes val loss jump" in finding.message
