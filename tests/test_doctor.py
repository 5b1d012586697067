"""The doctor end to end on small synthetic scenarios (32 px, a few hundred images, CPU).

The full-size versions (64 px, 2,000 images) are in benchmarks/diagnosis.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from steadyval.config import TrainConfig
from steadyval.data import load_dataset
from steadyval.diagnose.ranking import rank_causes
from steadyval.doctor import doctor
from steadyval.findings import Severity
from steadyval.report.doctor import write_doctor_outputs
from steadyval.synthetic import DISTINCT_SITES

SITE_SHIFT = {"n_train": 600, "n_val": 200, "image_size": 32, "seed": 5, "sites": DISTINCT_SITES,
              "site_mix": {"train": (0.9, 0.1), "val": (0.1, 0.9)}}
SMALL = {"n_train": 300, "n_val": 100, "image_size": 32, "seed": 5}
# Epochs chosen so that the verdicts hold for most random streams, not only the CPU's: with
# the doctor's seeds offset by 0, 10, ..., 40 (and once on an H100), split.rebalance was judged
# helps on SITE_SHIFT in 2 of 5 at 15 epochs (the baselines had not converged) and 4 of 5 at 25;
# the clean SMALL data read "unstable beyond noise" in 1 of 5 at 8 epochs and 0 of 7 at 15.


@pytest.fixture(scope="module")
def doctored(make_synthetic, tmp_path_factory):
    done = {}

    def run(spec: dict, **config):
        key = repr((sorted(spec.items()), sorted(config.items())))
        if key not in done:
            ds = load_dataset(make_synthetic(**spec).path, image_size=32)
            out = tmp_path_factory.mktemp("doctor")
            done[key] = doctor(ds, out, config=TrainConfig(image_size=32, **config))
        return done[key]

    return run


def arm(result, name):
    return next(a for a in result.arms if a.arm == name)


def test_site_shift_is_the_top_cause_and_rebalancing_helps(doctored):
    r = doctored(SITE_SHIFT, epochs=25)
    assert r.causes[0].id in ("split.site_shift", "split.image_shift")
    # At 25 epochs the baseline curve is calm, so no subgroup "drives the swings" here; the
    # attribution is tested on a volatile site-shifted run in tests/curves/test_scenarios.py and
    # its use in the ranking in tests/diagnose/test_ranking.py.
    rebalance = arm(r, "split.rebalance")
    assert rebalance.verdict == "helps", rebalance.reason
    assert rebalance.seeds == 3
    assert "split.site_shift" in r.headline and "split.rebalance" in r.headline


def test_lr_too_high_lower_lr_or_schedule_helps(doctored):
    r = doctored(SMALL, epochs=8, optimizer="sgd", lr=0.5)
    assert r.causes[0].id == "optim.lr_too_high"
    assert "corroborated" in r.causes[0].reason  # curves and the range test agree
    verdicts = {a.arm: a.verdict for a in r.arms}
    assert "helps" in (verdicts.get("optim.lower_lr"), verdicts.get("optim.schedule")), verdicts


def test_clean_data_with_a_sensible_config_forces_nothing(doctored):
    r = doctored(SMALL, epochs=15)
    assert not [f.id for f in r.findings if f.severity == Severity.HIGH]
    assert not any(c.finding.severity == Severity.HIGH for c in r.causes)
    assert all(a.verdict != "helps" or a.changes["final_auroc"].mean > -0.02 for a in r.arms)
    assert "unstable beyond noise" not in r.headline


def test_outputs_lead_with_the_verdict_and_hold_the_trials(doctored, tmp_path):
    r = doctored(SITE_SHIFT, epochs=25)
    jpath, rpath = write_doctor_outputs(r, tmp_path / "f.json")
    doc = json.loads(jpath.read_text())
    assert doc["headline"] == r.headline
    assert doc["trials"][0]["remedy"] == "baseline" and len(doc["trials"]) == 1 + len(r.arms)
    t = next(t for t in doc["trials"] if t["remedy"] == "split.rebalance")
    assert t["seeds"] == 3 and t["verdict"] == "helps" and len(t["val_auroc"]["ci95"]) == 2
    assert doc["diagnosis"][0]["reason"]
    html = rpath.read_text()
    assert html.index('id="verdict"') < html.index("Remedy trials") < html.index("Findings")
    assert "http://" not in html and "https://" not in html  # opens offline


def test_killed_doctor_resumes_without_redoing_finished_trials(make_synthetic, tmp_path):
    data = make_synthetic(**SMALL).path
    out = tmp_path / "doctor"
    cmd = [sys.executable, "-m", "steadyval", "doctor", str(data), "--out", str(out), "--workers", "1", "-q",
           "--set", "image_size=32", "--set", "epochs=10", "--set", "optimizer=sgd", "--set", "lr=0.5"]
    env = {**os.environ, "STEADYVAL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    finished: dict[Path, float] = {}
    while time.time() < deadline and proc.poll() is None:
        results = list(out.glob("trials/*/result.json"))
        if len(results) >= 4:  # the 3 baseline seeds and at least one remedy trial
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            finished = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/result.json")}
            break
        time.sleep(0.05)
    assert finished, "the doctor ended before it could be killed mid-trials"
    assert not (out / "findings.json").exists()

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime  # not trained again
    doc = json.loads((out / "findings.json").read_text())
    assert doc["reused_trials"] >= len(finished)
    assert len(list(out.glob("trials/*/result.json"))) > len(finished)


def test_headline_joins_a_calmer_curve_and_a_higher_auroc(doctored):
    from dataclasses import replace

    from steadyval.doctor import headline
    from steadyval.experiments.verdicts import Interval

    r = doctored(SMALL, epochs=8, optimizer="sgd", lr=0.5)
    best = next(a for a in r.arms if a.verdict == "helps")
    both = replace(best, changes={**best.changes, "churn": Interval(-0.5, (-0.7, -0.3), 3),
                                  "val_loss_volatility": Interval(0.1, (-0.2, 0.4), 3),
                                  "final_auroc": Interval(0.3, (0.2, 0.4), 3)})
    text = headline(replace(r, arms=[both]))
    assert f"Remedy {best.arm} cut churn" in text and "by 50% [30%, 70%] and raised val AUROC by 0.300" in text


def test_headline_leads_with_the_cause_when_the_curve_is_calm(doctored):
    from dataclasses import replace

    from steadyval.doctor import headline

    r = doctored(SITE_SHIFT, epochs=25)
    calm = replace(r, curve_findings=[f for f in r.curve_findings if f.id != "curves.volatile"])
    assert not calm.unstable
    text = headline(calm)
    assert text.startswith(f"Main problem: {r.causes[0].finding.title} ({r.causes[0].id})")
    assert "Validation is stable" not in text


def test_the_fast_budget_takes_remedies_breadth_first_up_to_its_size():
    from steadyval.doctor import BUDGETS, choose_remedies
    from steadyval.experiments.remedies import Hints
    from steadyval.findings import Finding

    overfit = Finding("model.overfitting", Severity.MEDIUM, "", "", {},
                      remedies=["stop.early", "reg.weight_decay", "reg.dropout", "aug.geometric"])
    lr = Finding("optim.lr_too_high", Severity.MEDIUM, "", "", {}, remedies=["optim.lower_lr", "optim.schedule"])
    imbalance = Finding("data.class_imbalance", Severity.MEDIUM, "", "", {},
                        remedies=["loss.class_weights", "sampler.balanced"])
    causes = rank_causes([imbalance], [overfit], [lr])
    chosen, skipped = choose_remedies(causes, TrainConfig(), Hints(n_train=400), BUDGETS["fast"])
    order = [c.id for c in causes]
    first = {c.id: [r for r in c.finding.remedies if r not in ("stop.early", "reg.dropout")] for c in causes}
    # stop.early trains nothing (read off the baseline's epochs), so it takes no slot; the four
    # slots go breadth first, one remedy from each cause, then a second from the first.
    assert chosen[0] == "stop.early" and len(chosen) == 5
    assert chosen[1:] == [first[order[0]][0], first[order[1]][0], first[order[2]][0], first[order[0]][1]]
    assert any("over the 4-remedy budget" in why for why in skipped.values())
    assert skipped["reg.dropout"] == "does not apply to this config or data"  # cnn_dropout has it
    # A baseline run that did not complete leaves nothing to read off: stop.early takes a slot.
    chosen_nf, _ = choose_remedies(causes, TrainConfig(), Hints(n_train=400), BUDGETS["fast"], False)
    assert len(chosen_nf) == 4 and "stop.early" in chosen_nf
    # With early stopping already on, stop.early does not apply and nothing is free.
    es = TrainConfig(early_stopping=True)
    chosen_es, _ = choose_remedies(causes, es, Hints(n_train=400), BUDGETS["fast"])
    assert "stop.early" not in chosen_es and len(chosen_es) == 4


def test_training_longer_waits_for_the_thorough_budget():
    from steadyval.doctor import BUDGETS, choose_remedies
    from steadyval.experiments.remedies import Hints
    from steadyval.findings import Finding

    underfit = Finding("train.underfitting", Severity.MEDIUM, "", "", {}, remedies=["train.longer"])
    imbalance = Finding("data.class_imbalance", Severity.MEDIUM, "", "", {},
                        remedies=["loss.class_weights", "sampler.balanced"])
    causes = rank_causes([imbalance], [underfit], [])
    chosen, skipped = choose_remedies(causes, TrainConfig(), Hints(n_train=400), BUDGETS["fast"])
    # Twice a training per seed: named with the reason, and its slot goes to the other cause.
    assert "train.longer" not in chosen and chosen == ["loss.class_weights", "sampler.balanced"]
    assert "2x as long as the baseline" in skipped["train.longer"] and "thorough" in skipped["train.longer"]
    assert "continues each baseline run" in skipped["train.longer"]
    chosen, _ = choose_remedies(causes, TrainConfig(), Hints(n_train=400), BUDGETS["thorough"])
    assert "train.longer" in chosen


def test_a_resplit_that_gives_the_current_split_is_not_trialled(make_synthetic, tmp_path):
    import pandas as pd

    from steadyval.doctor import BUDGETS, _hints, choose_remedies
    from steadyval.experiments.remedies import trialable
    from steadyval.findings import Finding

    nothing = SimpleNamespace(by_id=lambda finding_id: [], findings=[])
    synthetic = make_synthetic(n_train=120, n_val=40, image_size=32, seed=3)
    # The scanner-shifted given split: a re-split stratified by site changes it.
    given = load_dataset(synthetic.path, image_size=32)
    assert not _hints(given, nothing, nothing).resplit_same
    # No split and no metadata: steadyval's own split is already the re-split.
    table = pd.read_csv(synthetic.path)
    table["path"] = [str(synthetic.path.parent / p) for p in table["path"]]
    bare = tmp_path / "bare.csv"
    table[["path", "label", "patient_id"]].to_csv(bare, index=False)
    made = load_dataset(bare, image_size=32)
    hints = _hints(made, nothing, nothing)
    assert hints.resplit_same and not trialable("split.rebalance", TrainConfig(), hints)
    # With k folds every arm trains on re-split folds already.
    assert _hints(given, nothing, nothing, folds=3).resplit_same
    shift = Finding("split.site_shift", Severity.HIGH, "", "", {},
                    remedies=["split.rebalance", "aug.intensity", "eval.kfold"])
    chosen, skipped = choose_remedies(rank_causes([shift], [], []), TrainConfig(), hints, BUDGETS["fast"])
    assert chosen == ["aug.intensity"]
    assert "exactly the current train/val split" in skipped["split.rebalance"]
    assert skipped["eval.kfold"].startswith("an estimate, not a fix")


def test_free_slots_go_to_weak_causes_and_stabilisers_only_when_validation_is_unstable():
    from steadyval.doctor import BUDGETS, choose_remedies
    from steadyval.experiments.remedies import Hints
    from steadyval.findings import Finding

    noise = Finding("data.label_noise", Severity.MEDIUM, "", "", {}, remedies=["data.drop_label_issues"])
    imbalance = Finding("data.class_imbalance", Severity.LOW, "", "", {},
                        remedies=["loss.class_weights", "sampler.balanced"])
    causes = rank_causes([noise, imbalance], [], [])
    hints = Hints(label_issue_paths=["t1.png"], n_train=400)
    stabilisers = ("optim.lower_lr", "optim.schedule", "avg.ema", "stop.early")
    # A calm curve: only the medium cause is served, however many slots are left.
    calm, skipped = choose_remedies(causes, TrainConfig(), hints, BUDGETS["fast"])
    assert calm == ["data.drop_label_issues"] and skipped == {}
    # Unstable beyond noise: the low cause, then the stabilisers fill the 4 slots, breadth
    # first; stop.early is free (read off the baseline's epochs).
    chosen, skipped = choose_remedies(causes, TrainConfig(), hints, BUDGETS["fast"], True, stabilisers)
    assert chosen == ["data.drop_label_issues", "stop.early", "loss.class_weights", "optim.lower_lr",
                      "sampler.balanced"]
    assert skipped["optim.schedule"].startswith("over the 4-remedy budget")
