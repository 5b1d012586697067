from steadyval.diagnose.ranking import merge_seeds, rank_causes
from steadyval.findings import Finding, Severity


def f(fid, sev, **evidence):
    return Finding(fid, Severity(sev), fid, "", evidence)


def test_merge_takes_the_median_severity_over_seeds():
    merged = {m.id: m for m in merge_seeds([
        [f("model.overfitting", "high"), f("curves.noise_floor", "medium")],
        [f("model.overfitting", "medium")],
        [f("model.overfitting", "high")],
    ])}
    assert merged["model.overfitting"].severity == Severity.HIGH
    assert merged["model.overfitting"].evidence["seeds_reporting"] == 3
    # 1 of 3 seeds: kept, but no more than low.
    assert merged["curves.noise_floor"].severity == Severity.LOW
    assert "1 of 3" in merged["curves.noise_floor"].message


def test_symptoms_are_not_causes_and_severity_ranks_first():
    causes = rank_causes([f("data.class_imbalance", "medium")],
                         [f("curves.volatile", "high"), f("model.overfitting", "high", seeds_reporting=3, seeds=3)],
                         [f("optim.lr_too_high", "low")])
    assert [c.id for c in causes] == ["model.overfitting", "data.class_imbalance", "optim.lr_too_high"]
    assert "3/3 baseline seeds" in causes[0].reason


def test_the_subgroup_that_drives_the_swings_lifts_its_cause():
    attribution = {"by_column": {"site": {"scanner_b": {"n_images": 40, "ratio": 5.0},
                                          "scanner_a": {"n_images": 60, "ratio": 0.2}}}}
    volatile = f("curves.volatile", "high", loss_attribution=attribution)
    causes = rank_causes([f("data.label_noise", "high"), f("split.site_shift", "high", column="site")],
                         [volatile], [])
    assert causes[0].id == "split.site_shift" and causes[0].drives_swings
    assert "scanner_b" in causes[0].reason


def test_equal_scores_put_leakage_before_model_causes():
    causes = rank_causes([f("data.class_imbalance", "high"), f("split.group_leakage", "high")], [], [])
    assert causes[0].id == "split.group_leakage"


def test_imbalance_that_starves_the_val_set_ranks_above_the_small_val_set():
    small = f("split.small_validation", "high", n_val=100, n_val_positive=7, n_val_negative=93,
              limited_by_minority=True)
    causes = rank_causes([small, f("data.class_imbalance", "high")], [], [])
    assert causes[0].id == "data.class_imbalance" and "explains" in causes[0].reason
    tiny = f("split.small_validation", "high", n_val=30, n_val_positive=14, n_val_negative=16,
             limited_by_minority=False)
    assert rank_causes([tiny, f("data.class_imbalance", "high")], [], [])[0].id == "split.small_validation"


def test_a_batch_too_small_for_the_lr_ranks_above_the_lr():
    lr = f("optim.lr_too_high", "high", lr=0.01)
    proven = f("optim.batch_too_small", "high", stalls_at_batch=True, larger_batch=8, batch_size=2)
    causes = rank_causes([], [], [lr, proven])
    assert causes[0].id == "optim.batch_too_small" and "explains optim.lr_too_high" in causes[0].reason
    # When the larger batch does not rescue a stalled run, the LR comes first.
    unproven = f("optim.batch_too_small", "high", fit_seeds=3, larger_batch_wins=3, stalls_at_batch=False)
    assert rank_causes([], [], [lr, unproven])[0].id == "optim.lr_too_high"


def test_an_explaining_cause_ranks_above_the_cause_it_explains_even_when_that_is_corroborated():
    # The benchmark's batch_too_small scenario: the probe's LR finding is high and the curves
    # back it in one seed, the noise-scale finding is only medium, yet it explains the LR one.
    lr_probe = f("optim.lr_too_high", "high", lr=0.01)
    lr_curves = f("optim.lr_too_high", "low", seeds_reporting=1, seeds=3)
    batch = f("optim.batch_too_small", "medium", stalls_at_batch=True, larger_batch=8, batch_size=2)
    causes = rank_causes([], [lr_curves], [lr_probe, batch], seeds=3)
    assert [c.id for c in causes[:2]] == ["optim.batch_too_small", "optim.lr_too_high"]
    assert causes[0].score >= causes[1].score + 0.25


def test_a_probe_the_baseline_curves_contradict_is_lowered():
    probe = f("optim.lr_too_high", "high", lr=0.001)
    overfit = f("model.overfitting", "medium", seeds_reporting=3, seeds=3)
    causes = rank_causes([], [overfit], [probe], seeds=3)
    assert causes[0].id == "model.overfitting"
    lowered = next(c for c in causes if c.id == "optim.lr_too_high")
    assert lowered.finding.severity == Severity.MEDIUM and "not seen in the train curves" in lowered.reason
    # The same probe finding, with the LR signature in the baseline's own train loss, stays high.
    signature = f("optim.lr_too_high", "medium", seeds_reporting=3, seeds=3)
    confirmed = rank_causes([], [overfit, signature], [probe], seeds=3)
    assert confirmed[0].id == "optim.lr_too_high" and confirmed[0].finding.severity == Severity.HIGH
    # Without baseline curves there is nothing to contradict it.
    assert rank_causes([], [], [probe])[0].finding.severity == Severity.HIGH
