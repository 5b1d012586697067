"""Trial workers: one process per core with one thread each, against one process with all threads.

The doctor's remedy grid runs independent trainings. Two ways to spend the cores: one
worker with every core's threads (trainings one after the other), or one worker per core
with one thread each (trainings side by side). Both run the same trials of the seed's Ex. 2
model here, alternately, twice each, and the ratio is printed.

    python benchmarks/workers.py [--n 2000] [--epochs 3] [--trials 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from steadyval.config import TrainConfig
from steadyval.data import load_dataset
from steadyval.experiments.runner import available_cores, run_grid
from steadyval.experiments.trials import TrialSpec, fingerprint
from steadyval.synthetic import SyntheticSpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    cores = available_cores()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = SyntheticSpec(n_train=args.n * 4 // 5, n_val=args.n // 5, image_size=64, seed=7)
        ds = load_dataset(generate(spec, tmp / "data").path, image_size=64, cache_dir=tmp / "cache")
        fp = fingerprint(ds)
        specs = [TrialSpec("baseline", (), TrainConfig(epochs=args.epochs, seed=s)) for s in range(args.trials)]
        times: dict[int, list[float]] = {1: [], cores: []}
        for rep, workers in enumerate([1, cores, 1, cores]):
            start = time.perf_counter()
            run_grid(specs, ds, tmp / f"grid{rep}", fp, workers=workers)
            times[workers].append(time.perf_counter() - start)
            print(f"  {workers} worker(s) x {max(1, torch.get_num_threads() // workers)} thread(s): "
                  f"{times[workers][-1]:.1f} s for {args.trials} trainings", flush=True)
    one, many = min(times[1]), min(times[cores])
    print(f"{args.trials} trainings, {args.n} images at 64 px, {args.epochs} epochs: 1 worker {one:.1f} s, "
          f"{cores} workers {many:.1f} s (best of 2); side by side is {one / many:.2f}x")


if __name__ == "__main__":
    main()
