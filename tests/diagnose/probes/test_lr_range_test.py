import pytest

from steadyval.config import load_config
from steadyval.diagnose.base import run_probes
from steadyval.diagnose.probes.lr_range_test import LrRangeTest


def test_sgd_at_half_is_above_the_stable_range(tiny) -> None:
    result = run_probes(tiny, load_config(sets=["preset=seed-ex2", "image_size=32", "optimizer=sgd", "lr=0.5"]),
                        [LrRangeTest()])
    assert [f.id for f in result.findings] == ["optim.lr_too_high"]
    low, high = result.findings[0].evidence["suggested_range"]
    assert low < high < 0.5 and high == pytest.approx(10 * low)


def test_a_sensible_learning_rate_is_left_alone(tiny) -> None:
    for sets in (["optimizer=adam", "lr=0.001"], ["optimizer=sgd", "lr=0.01"]):
        result = run_probes(tiny, load_config(sets=["preset=seed-ex2", "image_size=32", *sets]), [LrRangeTest()])
        assert result.findings == [], sets


def test_the_range_test_replays_with_the_seed(tiny) -> None:
    cfg = load_config(sets=["preset=seed-ex2", "image_size=32", "optimizer=sgd", "lr=0.5"])
    a = run_probes(tiny, cfg, [LrRangeTest()]).findings[0].evidence
    b = run_probes(tiny, cfg, [LrRangeTest()]).findings[0].evidence
    assert a == b
