import math

import numpy as np
import pytest

from steadyval.experiments.trials import TrialOutcome
from steadyval.experiments.verdicts import compare, interval, summarise


def outcomes(arm, vols, aucs, churns=None):
    churns = churns or [0.05] * len(vols)
    return [TrialOutcome(f"{arm}{i}", arm, [] if arm == "baseline" else [arm], i, None,
                         {"val_loss_volatility": v, "churn": c, "final_auroc": a, "best_auroc": a}, "completed",
                         1.0, 100, 50, "") for i, (v, a, c) in enumerate(zip(vols, aucs, churns, strict=True))]


BASE = summarise("baseline", outcomes("baseline", [0.30, 0.40, 0.35], [0.90, 0.91, 0.89]))


def test_interval_is_a_t_interval():
    iv = interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0
    assert iv.ci95 == pytest.approx((2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)), abs=1e-3)
    assert interval([1.0]).ci95 == (-math.inf, math.inf)


def test_an_arm_s_absolute_intervals_stay_in_the_measure_s_range():
    # The demo's baseline churn was 0.021 [-0.010, 0.051] before intervals were cut to [0, 1].
    arm = summarise("baseline", outcomes("baseline", [0.01, 0.12, 0.08], [0.99, 0.93, 1.0],
                                         churns=[0.0, 0.0, 0.06]))
    assert arm.values["churn"].ci95[0] == 0.0 and arm.values["churn"].mean == pytest.approx(0.02)
    assert arm.values["val_loss_volatility"].ci95[0] == 0.0
    assert arm.values["final_auroc"].ci95[1] == 1.0 and arm.values["final_auroc"].ci95[0] < 0.99
    assert interval([-1.0, 1.0]).ci95[0] < -1  # a change keeps its t-interval


def test_a_consistent_volatility_cut_helps():
    arm = compare(BASE, summarise("optim.lower_lr", outcomes("optim.lower_lr", [0.12, 0.15, 0.14], [0.91, 0.92, 0.90])))
    assert arm.verdict == "helps", arm.reason
    v = arm.changes["val_loss_volatility"]
    assert -0.65 < v.mean < -0.55 and v.ci95[1] < 0 and v.ci95[0] > -1


def test_calm_but_useless_hurts():
    arm = compare(BASE, summarise("reg.dropout", outcomes("reg.dropout", [0.01, 0.01, 0.02], [0.50, 0.52, 0.49])))
    assert arm.verdict == "hurts"
    assert "useless" in arm.reason


def test_noise_is_no_effect():
    arm = compare(BASE, summarise("avg.ema", outcomes("avg.ema", [0.40, 0.30, 0.36], [0.89, 0.92, 0.90])))
    assert arm.verdict == "no_effect"


def test_auroc_loss_hurts_even_when_calmer():
    arm = compare(BASE, summarise("model.smaller", outcomes("model.smaller", [0.10, 0.11, 0.10], [0.80, 0.81, 0.79])))
    assert arm.verdict == "hurts"


def test_more_churn_at_the_same_auroc_hurts():
    arm = compare(BASE, summarise("loss.class_weights", outcomes("loss.class_weights", [0.30, 0.41, 0.34],
                                                                 [0.90, 0.91, 0.89], [0.50, 0.62, 0.55])))
    assert arm.verdict == "hurts" and arm.reason.startswith("churn rose by")


def test_a_small_but_significant_auroc_loss_is_named_not_called_no_change():
    # The demo's de-duplication arm: AUROC 0.012 lower in every seed (its val set lost the
    # near-copies that flattered it), below the 0.02 margin, and nothing else changed.
    arm = compare(BASE, summarise("data.dedupe", outcomes("data.dedupe", [0.31, 0.39, 0.36], [0.888, 0.899, 0.877])))
    assert arm.verdict == "no_effect"
    assert arm.reason.startswith("val AUROC fell by 0.012") and "within the 0.02 margin" in arm.reason


def _from_curves(arm: str, curves: list[list[float]], auc: float = 0.95) -> list[TrialOutcome]:
    from steadyval.curves.measures import val_loss_rise_volatility, val_loss_volatility

    return [TrialOutcome(f"{arm}{i}", arm, [] if arm == "baseline" else [arm], i, None,
                         {"val_loss_volatility": val_loss_volatility(np.array(c)),
                          "val_loss_rise_volatility": val_loss_rise_volatility(np.array(c)),
                          "churn": 0.05, "final_auroc": auc, "best_auroc": auc}, "completed", 1.0, 100, 50, "")
            for i, c in enumerate(curves)]


def test_a_faster_descent_is_not_counted_as_more_volatility_but_more_jumps_are():
    # Shapes from a site-shifted split and its re-split (25 epochs, seed offset 40): the baseline's
    # val loss falls slowly from 0.69 to ~0.4, the re-split's fast to ~0.08; neither jumps.
    slow = [list(np.linspace(0.69, end, 25) + 0.004 * np.sin(np.arange(25) + k))
            for k, end in enumerate((0.40, 0.25, 0.43))]
    fast = [list(0.08 + 0.61 * np.exp(-np.arange(25) / r) + 0.004 * np.sin(np.arange(25) + 2))
            for r in (5.0, 6.0, 4.5)]
    base = summarise("baseline", _from_curves("baseline", slow))
    descent = compare(base, summarise("split.rebalance", _from_curves("split.rebalance", fast)))
    assert descent.changes["val_loss_volatility"].above_zero  # the DESIGN measure rises...
    assert not descent.changes["val_loss_rises"].above_zero  # ...with no more increases
    assert descent.verdict == "no_effect" and "faster descent" in descent.reason, descent.reason
    assert "rose" not in descent.reason
    jumpy = [list(np.array(c) + 0.08 * np.where(np.arange(25) % 2, 1, -1) * (1 + 0.3 * k))
             for k, c in enumerate(slow)]
    jumps = compare(base, summarise("loss.class_weights", _from_curves("loss.class_weights", jumpy)))
    assert jumps.verdict == "hurts" and "val-loss volatility rose" in jumps.reason, jumps.reason
