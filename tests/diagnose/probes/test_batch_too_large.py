from steadyval.config import load_config
from steadyval.data import load_dataset
from steadyval.diagnose.base import ProbeContext, run_probes
from steadyval.diagnose.probes import gradient_noise_scale
from steadyval.diagnose.probes.batch_too_large import HIGH_RATIO, BatchTooLarge
from steadyval.diagnose.probes.gradient_noise_scale import noise_scale
from steadyval.findings import Severity


def _data(make_synthetic, **spec):
    """1,200 training images: room for a batch of 256, several steps per short epoch at 64."""
    return load_dataset(make_synthetic(n_train=1200, n_val=300, image_size=32, **spec).path, image_size=32)


def _config(*sets):
    # The seed's Ex. 1 model: its noise scale is ~30 images on these data at 32 px.
    return load_config(sets=["preset=seed-ex1", "image_size=32", *sets])


def test_a_batch_far_above_the_noise_scale_is_found_and_a_quarter_of_it_trains_better(make_synthetic) -> None:
    result = run_probes(_data(make_synthetic), _config("batch_size=256"), [BatchTooLarge()])
    assert [f.id for f in result.findings] == ["optim.batch_too_large"]
    finding = result.findings[0]
    ev = finding.evidence
    assert ev["ratio"] >= HIGH_RATIO and ev["smaller_batch"] == 64
    # From the same weights on the same images, the quarter batch ends lower in every seed.
    assert ev["smaller_batch_wins"] == ev["fit_seeds"] == 3
    assert ev["progress_at_smaller_batch"] < ev["progress_at_batch"]
    assert finding.severity in (Severity.MEDIUM, Severity.HIGH)
    assert finding.remedies == ["optim.smaller_batch"]


def test_the_usual_batch_is_not_too_large(make_synthetic) -> None:
    ds = _data(make_synthetic)
    for preset in ("seed-ex1", "seed-ex2"):
        config = load_config(sets=[f"preset={preset}", "image_size=32", "batch_size=32"])
        assert run_probes(ds, config, [BatchTooLarge()]).findings == [], preset


def test_learning_the_class_prior_does_not_make_the_batch_too_large(make_synthetic) -> None:
    """On imbalanced data a fresh model's gradients all pull the output bias one way."""
    ds = _data(make_synthetic, prevalence=0.1)
    ctx = ProbeContext(ds, _config("batch_size=32"))
    # Fresh models as built, output bias near 0: their pooled noise scale is tiny here, and
    # taken as is, 32 would be "far above" it. The probe starts them at the class prior.
    terms = [gradient_noise_scale.noise_terms(ctx, ctx.model(seed=s), 7 + s) for s in range(2)]
    assert 32 / (sum(t for t, _ in terms) / sum(g for _, g in terms)) >= HIGH_RATIO
    assert 32 / noise_scale(ctx).b_noise < HIGH_RATIO
    assert BatchTooLarge().run(ctx) == []


def test_the_shared_noise_scale_is_estimated_once(make_synthetic, monkeypatch) -> None:
    calls = []
    real = gradient_noise_scale.noise_terms
    monkeypatch.setattr(gradient_noise_scale, "noise_terms", lambda *a: calls.append(1) or real(*a))
    ctx = ProbeContext(_data(make_synthetic), _config("batch_size=32"))
    assert noise_scale(ctx) is noise_scale(ctx)
    assert len(calls) == gradient_noise_scale.INIT_SEEDS
