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
