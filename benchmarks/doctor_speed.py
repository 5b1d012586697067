"""Doctor wall time on 2,000 generated 64 px images with the fast budget, and where it goes.

The dataset has a scanner-shifted split and class imbalance, so the diagnosis finds causes
and trials remedies (up to 4 remedies x 3 seeds, plus a combination). Prints the total wall
time, the share of each stage, the number of trainings and the seconds per training, next
to one plain training of the same config timed in the same session (the unit everything
else is measured in).

Target (2-core machine): <= 10 minutes.

Measured: 5.7 min (9 trainings) on the 2-core AVX-512/bf16 machine of earlier sessions;
12.8 min on 2026-11-27 on a 2-core AVX2-only AMD EPYC (fp32): 12 trainings (3 baseline
seeds + 3 remedy arms x 3 seeds) at 62 s each inside the doctor against 65.5 s alone;
baseline 24 %, probes 2 %, trials 74 %. The target is not met on that machine: the
trainings are the time, and a training there is ~600 img/s of conv forward/backward
(oneDNN, fp32). Training the 3 seeds as one grouped-convolution ensemble was measured
slower (0.79x for the Ex. 2 model's second convolution), so seeds train one after another.
Again at 313f8da (2026-11-27, same machine, with the batch-too-large probe): 13.8 min, 12
trainings at 66.9 s each inside the doctor against 67.7 s for one alone in the same
session (the machine ran slower than at the 12.8 min run); baseline 23.5 %, probes 2.4 %
(19.6 s), trials 73.6 %. At 12a783b (2026-11-27, same machine, quiet): 13.1 min, 12 trainings
at 63.9 s each inside the doctor (baseline 69 s, trials 62 s) against 54.5 s for one alone
timed last; baseline 26.4 %, probes 2.2 %, trials 70.8 %. This dataset's arms have no early
stopping, so the replayed early-stopping trials save nothing here. At e5e9eca (2026-11-27,
same machine in a slower phase: one training alone 63.7 s against 54.5 s at 12a783b): 14.6 min,
the same 12 trainings at 70.9 s each inside the doctor; baseline 23.5 %, probes 2.1 %, trials
73.8 %. The baseline curve is calm here, so the free slot stays free (slots are filled with
stabilisers only for a curve unstable beyond noise); per training-alone unit the doctor took
13.7 of them, against 14.4 at 12a783b.
At 63a8c01 (2026-11-27, same machine in its slowest phase yet: one training alone 75.7 s):
11.8 min, 9 trainings (2 remedy arms, split.rebalance and aug.intensity, both no_effect) at
75.4 s each; baseline 30.9 %, probes 2.9 %, trials 65.3 %; 9.3 training-alone units. The third
arm of the runs above was optim.schedule, trialled for train.underfitting (this data's val
loss still falls at epoch 20); that cause's remedy is now train.longer, which trains twice as
long and which the fast budget names but leaves to --budget thorough. Trialled (at 45ad6af)
it took the doctor to 19.0 min, 15 training-alone units, and was judged no_effect.
At 4194537 (2026-11-27, same machine, one training alone 63.1 s): 10.2 min (613 s), the same
9 trainings (split.rebalance and aug.intensity, both no_effect) at 65.6 s each inside the
doctor; baseline 33.1 %, probes 2.9 %, trials 63.1 %; 9.7 training-alone units. Still over
the 10 minutes, by 13 s. Run again 40 minutes later (2741d94..00fbea8, nothing on the fast
path changed): 11.0 min (661 s), 9 trainings at 70.7 s each inside the doctor against 65.4 s
alone; baseline 31.1 %, probes 2.8 % (the LR range test 14 of its ~18 s), trials 65.2 %.
Inside the doctor a training has run at 0.93-0.96x of one alone in every run this stop;
freezing the garbage collector's heap (283k objects after the audit, 1 full collection per
4 epochs) did not change a 4-epoch training beyond this machine's noise (+-15 % between two
identical trainings).
Stop 15 (2026-11-27, augmentation in fewer passes: kornia's intensity pipeline had been 15-20 %
of an augmented 64 px step, now a third of that): 11.2 min (674 s) in a slow phase, one
training alone 69.6 s; 9 trainings at 72.2 s inside the doctor (baselines 69.5 s, trials
73.6 s); baseline 30.9 %, probes 2.7 %, trials 65.5 %; split.rebalance no_effect,
aug.intensity helps (val AUROC +0.007 [0.000, 0.014]); 9.7 training-alone units, as before.
At that machine speed nine trainings alone are 10.4 min: the target needs a training of
about 63 s or less. Again an hour later (one training alone 64.2 s): 10.5 min (629 s), 9
trainings at 67.3 s inside the doctor (baselines 68.6 s each, trials with the augmented arm
66.6 s), the same verdicts; 9.8 training-alone units.
Stop 16 (2026-12-07) ran on a 2-core AMD EPYC with AVX-512 and AVX512-BF16 (Zen 4), where
precision auto trains in bf16: before this stop's C kernels (at eead51a) 5.7 min (342 s), 18
trainings (5 remedy arms: the bf16 baseline read "unstable beyond noise", so free slots were
filled) at 18.3 s each inside the doctor, one alone 21.7 s; baseline 18.5 %, probes 2.7 %,
trials 77.9 %; no remedy judged helps. With the kernels (pooling, dropout, first-layer weight
gradient, training batch; at bdd6210): 5.0 min (301 s), the same 18 trainings at 16.1 s, one
alone 17.8 s; baseline 18.6 %, probes 2.8 %, trials 77.6 %; split.rebalance helps (val AUROC
+0.012 [0.000, 0.023]), loss.class_weights hurts, the other three no_effect (dropout masks now
come from a hash, so the arms draw other random numbers than before). On the AVX2-only
machine of stops 8-15 the kernels were not measured; in fp32 on this one they make a 64 px
step 1.30x faster (benchmarks/native_speed.py --precision fp32), which at that machine's 63-75 s
per training would put its 9-training doctor at about 8-9.5 min.
Later that day (a new session, same machine type), with the pooling's ReLU and the first block
fused (pool.c, block.c; at 5381df4): 4.4 min (263 s), the same 18 trainings at 14.0 s each
inside the doctor, one alone 17.4 s; baseline 17.2 %, probes 3.0 %, trials 78.7 %;
split.rebalance helps (val AUROC +0.013 [0.004, 0.022]), the other four arms no_effect.
An AVX2-only CPU emulated on that machine (kernels built with -march=x86-64-v3 by a CC wrapper,
ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, --precision
fp32): at 5381df4 9.7 min (583 s), 18 trainings at 31.6 s (one alone 41.7 s); at c91339a (the
first block in 8-wide groups without AVX-512) 7.6 min (457 s), 18 trainings at 24.7 s (one
alone 30.6 s); split.rebalance helps (churn -23 % [15, 29]), loss.class_weights hurts.

    python benchmarks/doctor_speed.py [--n 2000] [--epochs 20] [--precision fp32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from steadyval.config import TrainConfig
from steadyval.data import load_dataset
from steadyval.doctor import doctor
from steadyval.synthetic import DISTINCT_SITES, SyntheticSpec, generate
from steadyval.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="the trainings' precision (auto: bf16 where the CPU has AVX512-BF16 or AMX)")
    args = parser.parse_args()
    n_val = args.n // 5
    spec = SyntheticSpec(n_train=args.n - n_val, n_val=n_val, image_size=64, sites=DISTINCT_SITES,
                         site_mix={"train": (0.85, 0.15), "val": (0.2, 0.8)}, prevalence=0.25,
                         lesion_strength=0.35, seed=7)
    config = TrainConfig(epochs=args.epochs, precision=args.precision)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = generate(spec, tmp / "data").path
        start = time.perf_counter()
        result = doctor(data, tmp / "doctor", config=config, cache_dir=tmp / "cache", workers=args.workers)
        total = time.perf_counter() - start
        ds = load_dataset(data, image_size=64, cache_dir=tmp / "cache")
        t0 = time.perf_counter()
        train(ds, config, tmp / "one")
        one = time.perf_counter() - t0
    trials = [o for a in [result.baseline, *result.arms] for o in a.outcomes]
    print(f"doctor, fast budget, {args.n} images at 64 px, {args.epochs} epochs, {len(result.seeds)} seeds")
    print(f"  total wall time: {total:.0f} s ({total / 60:.1f} min; target <= 10 min)")
    for stage, seconds in result.seconds.items():
        print(f"  {stage:10s} {seconds:7.1f} s  {seconds / total:6.1%}")
    print(f"  trainings: {len(trials)} ({len(result.arms)} remedy arms: "
          f"{', '.join(a.arm + ' ' + a.verdict for a in result.arms)})")
    train_wall = result.seconds.get("baseline", 0) + result.seconds.get("trials", 0)
    print(f"  wall time per training inside the doctor: {train_wall / max(1, len(trials)):.1f} s; "
          f"one training alone, same config, this session: {one:.1f} s "
          f"(the trial grid runs at {one / (train_wall / max(1, len(trials))):.2f}x of that)")
    print(f"  verdict: {result.headline}")


if __name__ == "__main__":
    main()
