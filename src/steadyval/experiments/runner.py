"""Run a grid of trials in local worker processes, reusing every finished trial.

Workers default to one per two cores, each with the threads of its cores. Measured on the
2-core build machine (benchmarks/workers.py: 4 trainings of the seed's Ex. 2 model, 2,000
images at 64 px): two 1-thread workers side by side took 53.5 s, one 2-thread training
after another 51.8 s (0.97x). So a 2-core machine trains in-process, with no spawn cost and
no need for a ``__main__`` guard, and larger machines get one worker per pair of cores.
Workers are spawned, not forked: a forked copy of a process that already ran torch's
thread pools can deadlock.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from steadyval._progress import progress_bar
from steadyval.data import Dataset
from steadyval.experiments.trials import TrialOutcome, TrialSpec, load_outcome, replay_trial, run_trial

_WORKER_DATASET: Dataset | None = None


def _init_worker(dataset: Dataset, threads: int) -> None:
    import torch

    global _WORKER_DATASET
    _WORKER_DATASET = dataset
    torch.set_num_threads(threads)


def _work(spec: TrialSpec, root: str, fp: str, keep_state: bool, resume: TrialOutcome | None) -> TrialOutcome:
    assert _WORKER_DATASET is not None
    return run_trial(spec, _WORKER_DATASET, Path(root), fp, keep_state, resume)


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """One worker per two available cores (at least one)."""
    return max(1, available_cores() // 2)


def run_grid(specs: Sequence[TrialSpec], dataset: Dataset, root: Path, fp: str, *, workers: int | None = None,
             progress: bool = False, label: str = "trials", keep_state: bool = False,
             on_done: Callable[[TrialOutcome], None] | None = None) -> list[TrialOutcome]:
    """Every trial's outcome, in the order of ``specs``; finished trials are read, not re-run.

    ``keep_state``: the trials keep their training state, so that longer trials of the same
    config (``train.longer``) can continue them. A trial that a finished shorter one under
    ``root`` can be continued into is trained from that one's last epoch.
    """
    root.mkdir(parents=True, exist_ok=True)
    outcomes: dict[int, TrialOutcome] = {}
    todo: list[int] = []
    for i, spec in enumerate(specs):
        cached = load_outcome(root / spec.key(fp))
        if cached is not None:
            outcomes[i] = cached
        else:
            todo.append(i)
    # Early-stopping trials whose training twin is in this grid, or finished on disk, are read
    # off the twin's epochs after it (steadyval.train.replay), not trained.
    trained = _trained(root) if todo else []
    twins = _twins(specs, todo, trained, fp)
    replays = [i for i in todo if i in twins]
    todo = [i for i in todo if i not in twins]
    sources = _shorter(specs, todo, trained, fp)
    workers = min(workers or default_workers(), max(1, len(todo)))
    reused = len(outcomes)
    with progress_bar(len(specs), label + (f" ({reused} reused)" if reused else ""), progress) as advance:
        advance(reused)
        if workers <= 1 or len(todo) <= 1:
            for i in todo:
                outcomes[i] = run_trial(specs[i], dataset, root, fp, keep_state, sources.get(i))
                if on_done:
                    on_done(outcomes[i])
                advance(1)
        else:
            import torch

            threads = max(1, torch.get_num_threads() // workers)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(dataset, threads)) as pool:
                pending: dict[Future[TrialOutcome], int] = {
                    pool.submit(_work, specs[i], str(root), fp, keep_state, sources.get(i)): i for i in todo}
                try:
                    while pending:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in done:
                            i = pending.pop(fut)
                            outcomes[i] = fut.result()
                            if on_done:
                                on_done(outcomes[i])
                            advance(1)
                except BaseException:
                    for fut in pending:
                        fut.cancel()
                    raise
        for i in replays:
            twin = twins[i]
            source = outcomes[twin] if isinstance(twin, int) else twin
            replayed = replay_trial(specs[i], source, root, fp)
            outcomes[i] = replayed if replayed is not None else run_trial(specs[i], dataset, root, fp)
            if on_done:
                on_done(outcomes[i])
            advance(1)
    return [outcomes[i] for i in range(len(specs))]


def _trained(root: Path) -> list[TrialOutcome]:
    """The trials under ``root`` that trained every epoch (completed, not read off another)."""
    done = [load_outcome(d) for d in sorted(root.iterdir())] if root.is_dir() else []
    return [o for o in done if o is not None and not o.replayed_from and o.status == "completed"]


def _shorter(specs: Sequence[TrialSpec], todo: Sequence[int], trained: Sequence[TrialOutcome],
             fp: str) -> dict[int, TrialOutcome]:
    """For each trial to train, the longest of ``trained`` (finished under the grid's root) of
    the same config but fewer epochs: the run it may continue (run_trial checks that it can)."""
    by_lineage: dict[str, list[TrialOutcome]] = {}
    for done in trained:
        if done.lineage:
            by_lineage.setdefault(done.lineage, []).append(done)
    found: dict[int, TrialOutcome] = {}
    for i in todo:
        shorter = [o for o in by_lineage.get(specs[i].lineage_key(fp), [])
                   if o.measures.get("epochs_run", 0) < specs[i].config.epochs]
        if shorter:
            found[i] = max(shorter, key=lambda o: o.measures["epochs_run"])
    return found


def _twins(specs: Sequence[TrialSpec], todo: Sequence[int], trained: Sequence[TrialOutcome],
           fp: str) -> dict[int, int | TrialOutcome]:
    """For each early-stopping trial to run, a training twin that runs (or ran) every epoch: the
    index of a spec without early stopping in this grid, or one of ``trained`` (finished under
    the grid's root)."""
    wanted = {i: specs[i].training_key(fp) for i in todo if specs[i].config.early_stopping}
    if not wanted:
        return {}
    in_grid = {spec.training_key(fp): j for j, spec in enumerate(specs) if not spec.config.early_stopping}
    on_disk: dict[str, TrialOutcome] = {}
    for done in trained:
        if done.training:
            on_disk.setdefault(done.training, done)
    twins: dict[int, int | TrialOutcome] = {}
    for i, training in wanted.items():
        if training in in_grid:
            twins[i] = in_grid[training]
        elif training in on_disk:
            twins[i] = on_disk[training]
    return twins
