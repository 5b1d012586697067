import json

import numpy as np
import pytest

from steadyval.config import TrainConfig
from steadyval.data.split import fold_masks
from steadyval.experiments import trials as trials_mod
from steadyval.experiments.remedies import SplitChange
from steadyval.experiments.trials import TrialSpec, apply_split, fingerprint, run_trial

FAST = TrainConfig(epochs=5, batch_size=32, image_size=32)


def test_rebalance_keeps_val_size_groups_and_images(small):
    out = apply_split(small, SplitChange(rebalance=True, by=("site",)))
    n_val = int((small.records["split"] == "val").sum())
    assert abs(int((out.records["split"] == "val").sum()) - n_val) <= 0.25 * n_val
    assert out.images is small.images
    assert (small.records["split"] != out.records["split"]).any()  # really re-split
    rec = out.records
    assert not set(rec.loc[rec.split == "train", "group"]) & set(rec.loc[rec.split == "val", "group"])
    shares = rec.groupby("split")["site"].value_counts(normalize=True).unstack()
    assert abs(shares.loc["train"] - shares.loc["val"]).max() < 0.15


def test_kfold_masks_partition_the_pool(small):
    masks = fold_masks(small.records, 4, ["site"])
    assert np.array_equal(np.sum(masks, axis=0), np.ones(len(small.records)))


def test_drops_are_excluded_from_their_split(small):
    val_path = small.records.loc[small.records.split == "val", "path"].iloc[0]
    out = apply_split(small, SplitChange(drop_val=(val_path,)))
    assert out.records.set_index("path").loc[val_path, "split"] == "excluded"


def test_trial_key_depends_on_everything_that_changes_the_result():
    a = TrialSpec("baseline", (), FAST)
    assert a.key("d1") == TrialSpec("other name", (), FAST).key("d1")  # the name is not the trial
    assert a.key("d1") != a.key("d2")
    assert a.key("d1") != TrialSpec("baseline", (), FAST.model_copy(update={"seed": 1})).key("d1")
    assert a.key("d1") != TrialSpec("baseline", (), FAST, SplitChange(rebalance=True)).key("d1")


def test_a_finished_trial_is_read_back_not_retrained(small, tmp_path, monkeypatch):
    fp = fingerprint(small)
    spec = TrialSpec("baseline", (), FAST)
    first = run_trial(spec, small, tmp_path, fp)
    assert not first.reused and first.status == "completed"
    assert set(first.measures) >= {"val_loss_volatility", "churn", "final_auroc", "best_auroc"}
    assert json.loads((tmp_path / first.key / "result.json").read_text())["key"] == first.key

    def boom(*args, **kwargs):
        raise AssertionError("retrained a finished trial")

    monkeypatch.setattr("steadyval.train.train", boom)
    again = run_trial(spec, small, tmp_path, fp)
    assert again.reused and again.measures == first.measures


def test_an_unfinished_trial_is_trained_again(small, tmp_path):
    fp = fingerprint(small)
    spec = TrialSpec("baseline", (), FAST)
    partial = tmp_path / spec.key(fp)
    (partial / "run").mkdir(parents=True)
    (partial / "run" / "metrics.csv").write_text("epoch,loss\n0,1\n")  # killed mid-run
    out = trials_mod.run_trial(spec, small, tmp_path, fp)
    assert not out.reused and out.measures["epochs_run"] == 5


def test_worker_processes_give_the_in_process_results(small, tmp_path):
    from steadyval.experiments.runner import run_grid

    fp = fingerprint(small)
    specs = [TrialSpec("baseline", (), FAST.model_copy(update={"seed": s, "epochs": 4})) for s in (0, 1)]
    inline = run_grid(specs, small, tmp_path / "inline", fp, workers=1)
    pooled = run_grid(specs, small, tmp_path / "pooled", fp, workers=2)
    # Same seeds, same trials; one thread per worker instead of two sums in another order.
    for a, b in zip(pooled, inline, strict=True):
        assert a.measures == pytest.approx(b.measures, rel=0.02, abs=1e-3)
    assert [o.seed for o in pooled] == [0, 1] and not any(o.reused for o in pooled)


def test_training_key_ignores_only_when_a_trial_stops():
    a = TrialSpec("baseline", (), FAST)
    es = FAST.model_copy(update={"early_stopping": True, "patience": 2, "monitor": "val_auc", "smoothing": 0.5})
    assert a.training_key("d") == TrialSpec("stop.early", ("stop.early",), es).training_key("d")
    assert a.key("d") != TrialSpec("stop.early", ("stop.early",), es).key("d")
    assert a.training_key("d") != TrialSpec("x", (), FAST.model_copy(update={"lr": 0.01})).training_key("d")
    assert a.training_key("d") != TrialSpec("x", (), FAST, SplitChange(rebalance=True)).training_key("d")


def test_early_stopping_trials_are_read_off_their_twins_and_equal_training_them(small, tmp_path, monkeypatch):
    from steadyval.experiments.runner import run_grid

    fp = fingerprint(small)
    es = FAST.model_copy(update={"early_stopping": True, "patience": 2, "epochs": 8})
    base = [TrialSpec("baseline", (), FAST.model_copy(update={"seed": s, "epochs": 8})) for s in (0, 1)]
    stop = [TrialSpec("stop.early", ("stop.early",), es.model_copy(update={"seed": s})) for s in (0, 1)]
    trained = run_grid(stop, small, tmp_path / "trained", fp)  # no twin there: trained for real
    assert not any(o.replayed_from for o in trained)
    first = run_grid(base, small, tmp_path / "grid", fp)

    def boom(*args, **kwargs):
        raise AssertionError("trained an early-stopping trial whose twin had run")

    monkeypatch.setattr("steadyval.train.train", boom)
    # The twins finished in an earlier grid (the doctor's baseline), under the same root.
    replayed = run_grid(stop, small, tmp_path / "grid", fp)
    assert [o.replayed_from for o in replayed] == [o.key for o in first]
    for r, t in zip(replayed, trained, strict=True):
        assert r.measures == pytest.approx(t.measures, rel=0, abs=0, nan_ok=True)
        assert r.status == t.status and r.key == t.key
    assert any(o.status == "early_stopped" for o in replayed)  # the stop really cut the runs
    # Compared over the epochs it ran, early stopping leaves the curve exactly as it was: the
    # verdict rests on the model it keeps, not on the descent a shorter run is made of.
    from steadyval.experiments.verdicts import compare, summarise

    arm = compare(summarise("baseline", first), summarise("stop.early", replayed))
    assert arm.changes["val_loss_volatility"].mean == 0 and arm.changes["churn"].mean == 0
    assert "over the epochs each of 2 run(s) that stopped early" in arm.reason
    whole = [o.measures["val_loss_volatility"] for o in first]
    assert any(r.measures["val_loss_volatility"] != w for r, w in zip(replayed, whole, strict=True))
    monkeypatch.undo()
    # Twin and early-stopping trial in one grid: the twin trains, the other is read off it.
    both = run_grid([base[0], stop[0]], small, tmp_path / "one-grid", fp)
    assert both[1].replayed_from == both[0].key
    # A twin whose run files are gone cannot stand in: the trial is trained instead.
    import shutil

    shutil.rmtree(tmp_path / "grid" / first[1].key / "run")
    shutil.rmtree(tmp_path / "grid" / replayed[1].key)
    again = run_grid(stop, small, tmp_path / "grid", fp)
    assert again[0].reused and not again[1].reused and not again[1].replayed_from
    assert again[1].measures == pytest.approx(trained[1].measures, rel=0, abs=0, nan_ok=True)
    assert both[1].measures == pytest.approx(trained[0].measures, rel=0, abs=0, nan_ok=True)


def test_a_longer_run_is_compared_over_the_baseline_s_epochs(small, tmp_path):
    from steadyval.experiments.remedies import Hints, apply_remedies
    from steadyval.experiments.runner import run_grid
    from steadyval.experiments.verdicts import compare, summarise

    fp = fingerprint(small)
    base_cfg = FAST.model_copy(update={"epochs": 4})
    longer_cfg, _ = apply_remedies(["train.longer"], base_cfg, Hints())
    assert longer_cfg.epochs == 8
    base = run_grid([TrialSpec("baseline", (), base_cfg.model_copy(update={"seed": s})) for s in (0, 1)],
                    small, tmp_path, fp)
    longer = run_grid([TrialSpec("train.longer", ("train.longer",), longer_cfg.model_copy(update={"seed": s}))
                       for s in (0, 1)], small, tmp_path, fp)
    assert all(o.measures["epochs_run"] == 8 for o in longer)
    arm = compare(summarise("baseline", base), summarise("train.longer", longer))
    # Same seed, constant LR: the first 4 epochs are the baseline's own, so over them nothing
    # changes; over all 8 the calmer late epochs would have read as a cut in volatility.
    assert arm.changes["val_loss_volatility"].mean == 0 and arm.changes["churn"].mean == 0
    assert [o.measures["val_loss_volatility"] for o in longer] != [o.measures["val_loss_volatility"] for o in base]
    assert "2 longer run(s) compared over the baseline's epochs" in arm.reason
    assert arm.values["final_auroc"].mean == pytest.approx(np.mean([o.measures["final_auroc"] for o in longer]))


def test_a_longer_trial_continues_its_kept_baseline_and_equals_training_it(small, tmp_path):
    from steadyval.experiments.runner import run_grid
    from steadyval.train.trainer import STATE_FILE

    fp = fingerprint(small)
    base_cfg = FAST.model_copy(update={"epochs": 2, "device": "cpu"})  # bit for bit: the CPU's guarantee
    base = [TrialSpec("baseline", (), base_cfg.model_copy(update={"seed": s})) for s in (0, 1)]
    longer = [TrialSpec("train.longer", ("train.longer",), base_cfg.model_copy(update={"seed": s, "epochs": 4}))
              for s in (0, 1)]
    scratch = run_grid(longer, small, tmp_path / "scratch", fp)
    assert not any(o.resumed_from for o in scratch)
    kept = run_grid(base, small, tmp_path / "grid", fp, keep_state=True)
    assert all((tmp_path / "grid" / o.key / "run" / STATE_FILE).exists() for o in kept)
    resumed = run_grid(longer, small, tmp_path / "grid", fp, workers=1)
    assert [o.resumed_from for o in resumed] == [o.key for o in kept]
    for r, s, b in zip(resumed, scratch, kept, strict=True):
        assert r.key == s.key and r.status == s.status == "completed"
        assert r.measures == pytest.approx(s.measures, rel=0, abs=0, nan_ok=True)
        info = json.loads((tmp_path / "grid" / r.key / "run" / "run.json").read_text())
        assert info["resumed_from"] == b.run_dir  # two epochs trained, not four
    # In worker processes too (one thread each, so sums in another order: close, not identical).
    run_grid(base, small, tmp_path / "pool", fp, keep_state=True)
    pooled = run_grid(longer, small, tmp_path / "pool", fp, workers=2)
    assert all(o.resumed_from for o in pooled)
    for a, b in zip(pooled, scratch, strict=True):
        assert a.measures == pytest.approx(b.measures, rel=0.02, abs=1e-3)
    # Without the kept state (or with another config) the longer trial trains from the start.
    plain = run_grid(base, small, tmp_path / "plain", fp)
    again = run_grid(longer, small, tmp_path / "plain", fp)
    assert not any(o.resumed_from for o in again) and not any(o.reused for o in plain)
    other = run_grid([TrialSpec("x", (), base_cfg.model_copy(update={"seed": 0, "epochs": 4, "lr": 0.01}))],
                     small, tmp_path / "grid", fp)
    assert not other[0].resumed_from
