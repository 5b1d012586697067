import pytest

from steadyval.config import load_config
from steadyval.data import load_dataset
from steadyval.diagnose.base import ProbeContext, run_probes
from steadyval.diagnose.probes import gradient_noise_scale
from steadyval.diagnose.probes.batch_too_large import HIGH_RATIO, BatchTooLarge
from steadyval.diagnose.probes.gradient_noise_scale import GradientNoiseScale
from steadyval.findings import Severity


@pytest.fixture(scope="module")
def larger(make_synthetic):
    """1,200 training images: room for a batch of 512, four steps or more per epoch at 128."""
    return load_dataset(make_synthetic(n_train=1200, n_val=300, image_size=32).path, image_size=32)


def _run(ds, *sets):
    return run_probes(ds, load_config(sets=["preset=seed-ex2", "image_size=32", *sets]), [BatchTooLarge()])


def test_a_batch_far_above_the_noise_scale_is_found_and_a_quarter_of_it_trains_better(larger) -> None:
    result = _run(larger, "batch_size=512")
    assert [f.id for f in result.findings] == ["optim.batch_too_large"]
    finding = result.findings[0]
    ev = finding.evidence
    assert ev["ratio"] >= HIGH_RATIO and ev["smaller_batch"] == 128
    # From the same weights on the same images, the quarter batch ends lower in every seed.
    assert ev["smaller_batch_wins"] == ev["fit_seeds"] == 3
    assert ev["progress_at_smaller_batch"] < ev["progress_at_batch"]
    assert finding.severity in (Severity.MEDIUM, Severity.HIGH)
    assert finding.remedies == ["optim.smaller_batch"]


def test_the_usual_batch_is_not_too_large(larger) -> None:
    assert _run(larger, "batch_size=32").findings == []


def test_the_noise_scale_is_estimated_once_for_both_probes(larger, monkeypatch) -> None:
    calls = []
    real = gradient_noise_scale.noise_terms
    monkeypatch.setattr(gradient_noise_scale, "noise_terms", lambda *a: calls.append(1) or real(*a))
    ctx = ProbeContext(larger, load_config(sets=["preset=seed-ex2", "image_size=32", "batch_size=32"]))
    assert GradientNoiseScale().run(ctx) == [] and BatchTooLarge().run(ctx) == []
    assert len(calls) == gradient_noise_scale.INIT_SEEDS
