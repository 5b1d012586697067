"""The doctor: audit -> baseline over seeds -> curve analysis -> probes -> ranked diagnosis ->
remedy trials -> verdicts. The library form of ``steadyval doctor``; the CLI only prints.

Split remedies and comparability: a re-split (``split.rebalance``) keeps the val set at the
baseline's size, so the noise floor, and with it the scale of val-loss volatility and churn,
stays the same; each arm is measured on its own val set, because the volatility of *that*
set is what the user will watch after the fix. AUROC is also measured on each arm's own val
set; the report says so next to the split remedies, since a re-split val set can be easier
or harder than the old one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from steadyval.audit import AuditResult, audit_dataset
from steadyval.config import TrainConfig
from steadyval.curves import analyze_history
from steadyval.curves.base import CurveResult
from steadyval.curves.readers import read_log
from steadyval.data import Dataset, load_dataset
from steadyval.diagnose import ProbeResult, probe
from steadyval.diagnose.ranking import Cause, merge_seeds, rank_causes
from steadyval.errors import ConfigError
from steadyval.experiments.remedies import (
    REMEDIES,
    Hints,
    SplitChange,
    apply_remedies,
    cost,
    trains,
    trialable,
    why_not,
)
from steadyval.experiments.runner import run_grid
from steadyval.experiments.trials import TrialOutcome, TrialSpec, apply_split, fingerprint
from steadyval.experiments.verdicts import TrialSummary, compare, summarise
from steadyval.findings import Finding, Severity, sort_findings


@dataclass(frozen=True)
class Budget:
    """How much the doctor may try."""

    max_remedies: int
    per_cause: int  # remedies taken from one cause before moving to the next
    combination: bool
    combine: int = 2  # helping remedies, best AUROC first, put together in the combination
    max_cost: float = math.inf  # a remedy that trains longer than this (in baseline trainings) waits


BUDGETS: dict[str, Budget] = {
    # Breadth first: one remedy from each cause, then a second from each, up to the budget.
    "fast": Budget(max_remedies=4, per_cause=2, combination=True, max_cost=1.0),
    "thorough": Budget(max_remedies=8, per_cause=3, combination=True, combine=3),
}


@dataclass
class DoctorResult:
    """Everything the doctor found and tried; the report renders it."""

    dataset: Dataset
    config: TrainConfig
    audit: AuditResult
    baseline_curves: list[CurveResult]
    curve_findings: list[Finding]
    probes: ProbeResult
    causes: list[Cause]
    baseline: TrialSummary
    arms: list[TrialSummary]
    not_trialled: dict[str, str]
    headline: str
    seconds: dict[str, float]
    out: Path
    budget: str
    seeds: list[int]
    folds: int = 0

    @property
    def reused_trials(self) -> int:
        """Trials read back from an earlier, interrupted run instead of trained."""
        return sum(o.reused for a in (self.baseline, *self.arms) for o in a.outcomes)

    @property
    def replayed_trials(self) -> int:
        """Early-stopping trials read off the epochs of their twin without it, instead of trained."""
        return sum(bool(o.replayed_from) and not o.reused for a in (self.baseline, *self.arms) for o in a.outcomes)

    @property
    def resumed_trials(self) -> int:
        """Longer trials (train.longer, alone or combined) that continued a shorter run of the same
        config (the baseline, or the other remedy's trial) instead of training from epoch 0."""
        return sum(bool(o.resumed_from) and not o.reused for a in (self.baseline, *self.arms) for o in a.outcomes)

    @property
    def unstable(self) -> bool:
        """True when the baseline's validation is volatile beyond noise (medium or worse)."""
        return any(f.id == "curves.volatile" and f.severity.at_least(Severity.MEDIUM) for f in self.curve_findings)

    @property
    def findings(self) -> list[Finding]:
        """Audit, curve (merged over seeds) and probe findings, most severe first."""
        return sort_findings([*self.audit.findings, *self.curve_findings, *self.probes.findings])

    def to_dict(self) -> dict[str, Any]:
        """findings.json: the DESIGN.md contract plus the diagnosis and the trials."""
        from steadyval import __version__

        return {
            "steadyval_version": __version__,
            "command": "doctor",
            "headline": self.headline,
            "dataset": self.dataset.summary(),
            "config": self.config.model_dump(mode="json"),
            "budget": self.budget, "seeds": self.seeds, "folds": self.folds or None,
            "findings": [f.to_dict() for f in self.findings],
            "diagnosis": [c.to_dict() for c in self.causes],
            "trials": [self.baseline.to_dict(), *[a.to_dict() for a in self.arms]],
            "not_trialled": self.not_trialled,
            "skipped": {**self.audit.skipped, **self.probes.skipped},
            "seconds": self.seconds, "reused_trials": self.reused_trials, "replayed_trials": self.replayed_trials,
            "resumed_trials": self.resumed_trials,
        }


def doctor(data: Path | str | Dataset, out: Path | str, *, config: TrainConfig | None = None, seeds: int = 3,
           budget: Literal["fast", "thorough"] = "fast", folds: int = 0, workers: int | None = None,
           positive: str | None = None, group: str | None = None, cache_dir: Path | None = None,
           progress: bool = False, log: Any = None) -> DoctorResult:
    """Diagnose why validation is unstable on DATA and trial the remedies; write nothing but ``out``.

    ``log`` (optional) is called with one line per stage, for the terminal.
    """
    config = config or TrainConfig()
    if budget not in BUDGETS:
        raise ConfigError("--budget", "must be fast or thorough", f"'{budget}'", "Use --budget fast.")
    if seeds < 2:
        raise ConfigError("--seeds", "needs at least 2 seeds to put an interval on a change", str(seeds),
                          "Use --seeds 3 (the default).")
    if folds == 1 or folds < 0:
        raise ConfigError("--folds", "must be 0 (the given split) or at least 2", str(folds), "Use --folds 5.")
    say = log or (lambda line: None)
    out = Path(out)
    plan = BUDGETS[budget]
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    if isinstance(data, Dataset):
        ds = data
    else:
        if Path(data).exists():
            from steadyval.data.cache import refuse_inside

            data_root = Path(data)
            refuse_inside(out, data_root if data_root.is_dir() else data_root.parent, "--out")
        ds = load_dataset(data, image_size=config.image_size, positive=positive, group=group,
                          seed=config.seed, cache_dir=cache_dir, progress=progress)
    lap("ingest")
    audit = audit_dataset(ds, seed=config.seed, progress=progress)
    lap("audit")
    say(f"audit: {len(audit.findings)} finding(s)")

    fp = fingerprint(ds)
    root = out / "trials"
    seed_list = [config.seed + i for i in range(seeds)]
    fold_list: list[int | None] = list(range(folds)) if folds else [None]

    def specs(arm: str, remedies: tuple[str, ...], cfg: TrainConfig,
              change: SplitChange | None = None) -> list[TrialSpec]:
        return [TrialSpec(arm, remedies, cfg.model_copy(update={"seed": s}), change or SplitChange(), f, folds)
                for s in seed_list for f in fold_list]

    def grid(all_specs: list[TrialSpec], label: str, keep_state: bool = False) -> list[TrialOutcome]:
        return run_grid(all_specs, ds, root, fp, workers=workers, progress=progress, label=label,
                        keep_state=keep_state)

    # A budget that trials longer training keeps the baselines' and the single remedies' training
    # state: a train.longer trial then continues its seed's baseline, and a combination with
    # train.longer continues the other remedy's trial, instead of training again from epoch 0.
    longer = plan.max_cost > 1
    base_outcomes = grid(specs("baseline", (), config), "baseline", keep_state=longer)
    baseline = summarise("baseline", base_outcomes)
    lap("baseline")
    curves = [analyze_history(read_log(Path(o.run_dir))) for o in base_outcomes]
    curve_findings = merge_seeds([c.findings for c in curves])
    lap("analyze")
    say(f"baseline: {len(base_outcomes)} run(s); curves: {len(curve_findings)} finding(s)")
    # Trained baselines let the probes measure behaviour, not only setup; with folds each seed
    # trained on another split, so the probes go without.
    trained = [] if folds else [w for o in base_outcomes if (w := Path(o.run_dir) / "last.pt").exists()]
    probes = probe(ds, config, progress=progress, trained=trained)
    lap("probes")
    causes = rank_causes(audit.findings, curve_findings, probes.findings, seeds=len(curves))
    hints = _hints(ds, audit, probes, folds)
    volatile = [f for f in curve_findings if f.id == "curves.volatile" and f.severity.at_least(Severity.MEDIUM)]
    chosen, not_trialled = choose_remedies(causes, config, hints, plan,
                                           all(o.status == "completed" for o in base_outcomes),
                                           volatile[0].remedies if volatile else ())
    lap("diagnosis")
    say("trialling: " + (", ".join(chosen) if chosen else "nothing"))

    arm_specs = {rid: specs(rid, (rid,), *apply_remedies([rid], config, hints)) for rid in chosen}
    outcomes = grid([s for v in arm_specs.values() for s in v], "remedy trials", keep_state=longer) if arm_specs else []
    arms = [compare(baseline, summarise(rid, [o for o in outcomes if o.arm == rid])) for rid in chosen]
    helping = sorted([a for a in arms if a.verdict == "helps"], key=lambda a: -a.values["final_auroc"].mean)
    if plan.combination and len(helping) >= 2:
        # The best combination to try: the helping remedies with the highest val AUROC.
        combo = tuple(a.arm for a in helping[:plan.combine])
        name = " + ".join(combo)
        combo_outcomes = grid(specs(name, combo, *apply_remedies(combo, config, hints)), "combination")
        arms.append(compare(baseline, summarise(name, combo_outcomes)))
    lap("trials")
    result = DoctorResult(ds, config, audit, curves, curve_findings, probes, causes, baseline, arms,
                          not_trialled, "", seconds, out, budget, seed_list, folds)
    result.headline = headline(result)
    return result


def choose_remedies(causes: list[Cause], config: TrainConfig, hints: Hints, plan: Budget,
                    baseline_completed: bool = True,
                    stabilisers: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """Remedies to trial, taken from the top causes in turn, and why the others were not.

    The medium-or-worse causes come first, breadth first. When they leave slots free and
    validation is unstable beyond noise (``stabilisers``: the remedies of the
    ``curves.volatile`` finding), the low causes' remedies and then those stabilisers fill
    them: a volatile curve with one weak cause should not end with one trial and three
    unused slots. A remedy that only changes when runs stop (``stop.early``) trains nothing
    when every baseline run completed, its trials being read off their epochs: it is then
    trialled wherever a source lists it and takes none of the budget's slots. A remedy that
    trains longer than the budget's ``max_cost`` (``train.longer`` in the fast budget) is named
    with the reason, not trialled.
    """
    sources = [list(c.finding.remedies) for c in causes if c.finding.severity.at_least(Severity.MEDIUM)]
    chosen: list[str] = []
    paid = 0

    def take(groups: list[list[str]]) -> None:
        nonlocal paid
        for r in (r for g in groups for r in g):  # the free ones first, without a slot
            if (r not in chosen and baseline_completed and trialable(r, config, hints)
                    and not trains(r, config, hints)):
                chosen.append(r)
        for _ in range(plan.per_cause):
            for group in groups:
                usable = [r for r in group if r not in chosen and trialable(r, config, hints)
                          and cost(r, config, hints) <= plan.max_cost]
                if usable and paid < plan.max_remedies:
                    chosen.append(usable[0])
                    paid += 1

    take(sources)
    if stabilisers and paid < plan.max_remedies:
        fill = [list(c.finding.remedies) for c in causes if c.finding.severity == Severity.LOW]
        fill.append(list(stabilisers))
        take(fill)
        sources += fill
    not_trialled: dict[str, str] = {}
    for r in dict.fromkeys(r for group in sources for r in group):
        if r in chosen:
            continue
        if not trialable(r, config, hints):
            not_trialled[r] = why_not(r)
        elif cost(r, config, hints) > plan.max_cost:
            not_trialled[r] = (f"trains {cost(r, config, hints):g}x as long as the baseline per seed, over this "
                               f"budget's {plan.max_cost:g}x per trial (use --budget thorough, where it "
                               "continues each baseline run: one more training per seed)")
        elif paid >= plan.max_remedies:
            not_trialled[r] = f"over the {plan.max_remedies}-remedy budget (use --budget thorough)"
        else:
            not_trialled[r] = (f"the budget takes at most {plan.per_cause} remedies from one cause "
                               "(use --budget thorough)")
    return chosen, not_trialled


def _hints(ds: Dataset, audit: AuditResult, probes: ProbeResult, folds: int = 0) -> Hints:
    metadata = ds.categorical_metadata
    lr = None
    for f in probes.findings:
        if f.id == "optim.lr_too_high" and "suggested_range" in f.evidence:
            lr = float(f.evidence["suggested_range"][1])
    dup_val = [p["b"] for f in audit.by_id("split.duplicate_leakage")
               if f.evidence.get("splits") == ["train", "val"] for p in f.evidence.get("pairs", [])]
    issues = []
    for f in audit.by_id("data.label_noise"):
        if f.severity.at_least(Severity.LOW) and f.severity != Severity.INFO:
            conf = f.evidence.get("confidence", 0.9)
            issues = [x["path"] for x in f.evidence.get("issues", [])
                      if x["split"] == "train" and x["p_given"] <= 1 - conf]
    hints = Hints(metadata, lr, sorted(set(dup_val)), issues, len(ds.split_index("train")))
    # With k folds every arm already trains on folds stratified by label x metadata and grouped
    # by patient, which is what the re-split would give; otherwise draw the remedy's own re-split.
    resplit = REMEDIES["split.rebalance"].split
    assert resplit is not None
    same = folds > 0 or bool((apply_split(ds, resplit(hints)).records["split"] == ds.records["split"]).all())
    return replace(hints, resplit_same=same)


def headline(r: DoctorResult) -> str:
    """The answer first: what makes validation unstable, and which remedy is proven to help."""
    top = [c for c in r.causes if c.finding.severity.at_least(Severity.MEDIUM)]
    within_noise = any(f.id == "curves.noise_floor" for f in r.curve_findings)
    named = ""
    if top:
        named = f"{top[0].finding.title} ({top[0].id})"
        if len(top) > 1:
            named += f"; next: {top[1].finding.title} ({top[1].id})"
    if r.unstable:
        first = "Validation is unstable beyond noise" + (f". Most likely cause: {named}" if named else "")
    elif named:
        # The curve is calm, so the answer leads with the problem, not with "stable".
        first = (f"Main problem: {named}. The val curve itself "
                 + ("jumps only as much as the val-set size explains" if within_noise
                    else "is stable epoch to epoch"))
    elif within_noise:
        first = "The validation curve's jumps are within what the val-set size explains"
    else:
        first = "Validation is stable"
    first += "."
    best = best_arm(r.arms)
    if best is not None:
        v, c, auc = (best.changes[k] for k in ("val_loss_volatility", "churn", "final_auroc"))
        auc_b, auc_a = r.baseline.values["final_auroc"].mean, best.values["final_auroc"].mean
        if v.below_zero:
            gain = f"cut val-loss volatility by {-v.mean:.0%} [{-v.ci95[1]:.0%}, {-v.ci95[0]:.0%}]"
        elif c.below_zero:
            gain = (f"cut churn (val predictions flipping per epoch) by {-c.mean:.0%} "
                    f"[{-c.ci95[1]:.0%}, {-c.ci95[0]:.0%}]")
        else:
            gain = ""
        if auc.above_zero:
            auroc = (("and " if gain else "")
                     + f"raised val AUROC by {auc.mean:.3f} [{auc.ci95[0]:.3f}, {auc.ci95[1]:.3f}]")
        else:
            auroc = "without losing AUROC" if auc_a >= auc_b - 0.02 else "at some cost in AUROC"
        effect = f"{gain} {auroc}".strip()
        second = f" Remedy {best.arm} {effect} (val AUROC {auc_b:.3f} -> {auc_a:.3f}, {best.seeds} seeds)."
    elif r.arms:
        second = (f" None of the {len(r.arms)} trialled remedies beat the baseline beyond seed-to-seed "
                  f"noise ({len(r.seeds)} seeds); see the trials.")
    elif top and "eval.kfold" in r.not_trialled:
        second = (" Its remedy is an honest estimate rather than a retrain: a larger val set, or "
                  "`steadyval cv DATA --folds 5`.")
    else:
        second = " No remedy needed trialling." if not top else " No trialable remedy for these causes."
    return first + second


def best_arm(arms: list[TrialSummary]) -> TrialSummary | None:
    """The remedy to recommend: among the arms that help and keep val AUROC within 0.02 of the
    best helping arm's, the one with the largest significant cut in volatility or churn."""
    helping = [a for a in arms if a.verdict == "helps"]
    if not helping:
        return None
    top_auc = max(a.values["final_auroc"].mean for a in helping)
    near = [a for a in helping if a.values["final_auroc"].mean >= top_auc - 0.02]
    return min(near, key=_benefit)


def _benefit(a: TrialSummary) -> float:
    """Sort key, lower is better: the larger of the volatility and churn cuts that are significant."""
    cuts = [a.changes[k].mean for k in ("val_loss_volatility", "churn")
            if math.isfinite(a.changes[k].mean) and a.changes[k].below_zero]
    return min(cuts) if cuts else 0.0


