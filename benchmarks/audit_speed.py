"""Audit speed on 10,000 generated 64 px images, and the near-duplicate search at scale.

Prints images/s for a cold audit (decode + checks) and a cached re-run, the time of the
faiss pHash search at 10k and 100k hashes, and our vectorised pHash against a per-image
imagehash loop (the baseline it replaces) measured side by side.

Targets (2-core machine): cold 10k <= 60 s, cached <= 10 s, 100k-hash search <= 30 s.

    python benchmarks/audit_speed.py [--n 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from steadyval.audit import audit_dataset
from steadyval.audit.checks.duplicate_leakage import near_duplicate_pairs
from steadyval.data import load_dataset
from steadyval.data.properties import phash
from steadyval.synthetic import SyntheticSpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="steadyval-bench-"))
    n_val = args.n // 5
    spec = SyntheticSpec(n_train=args.n - n_val, n_val=n_val, images_per_patient=2,
                         duplicates=50, label_noise=0.02, seed=0)
    t = time.perf_counter()
    synthetic = generate(spec, work / "data")
    print(f"generated {args.n} images in {time.perf_counter() - t:.1f} s")

    rows = []
    for run in ("cold", "cached"):
        t0 = time.perf_counter()
        ds = load_dataset(synthetic.path, cache_dir=work / "cache")
        t1 = time.perf_counter()
        result = audit_dataset(ds)
        t2 = time.perf_counter()
        rows.append((run, t1 - t0, t2 - t1, t2 - t0))
        slowest = sorted(result.seconds.items(), key=lambda kv: -kv[1])[:3]
    print(f"\n{'run':8s} {'ingest s':>9s} {'checks s':>9s} {'total s':>8s} {'images/s':>9s}")
    for run, ingest, checks, total in rows:
        print(f"{run:8s} {ingest:9.1f} {checks:9.1f} {total:8.1f} {args.n / total:9.0f}")
    print("slowest checks (cached run): " + ", ".join(f"{k} {v:.1f} s" for k, v in slowest))
    print(f"findings: {[f.id for f in result.findings]}")

    # Near-duplicate search: 10k real hashes, and 100k (the 10k plus 9 perturbed copies each,
    # a few bits flipped, so that the index sees realistic clusters of near neighbours).
    hashes = ds.hashes
    rng = np.random.default_rng(0)
    bits = np.unpackbits(hashes, axis=1)
    big = [hashes]
    for _ in range(9):
        flip = rng.random(bits.shape) < 0.05
        big.append(np.packbits(bits ^ flip, axis=1))
    big_h = np.concatenate(big)
    print(f"\n{'hashes':>8s} {'search s':>9s} {'pairs':>10s}")
    for h in (hashes, big_h):
        idx = np.arange(len(h))
        val, train = idx[idx % 5 == 0], idx[idx % 5 != 0]
        t = time.perf_counter()
        pairs = near_duplicate_pairs(h, val, train)
        print(f"{len(h):8d} {time.perf_counter() - t:9.2f} {len(pairs):10d}")

    full_size_ingest()

    try:
        import imagehash
        from PIL import Image
    except ImportError:
        print("\n(imagehash not installed: skipping the pHash comparison)")
        return
    sample = ds.images[:2000]
    t = time.perf_counter()
    phash(sample)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for im in sample:
        imagehash.phash(Image.fromarray(im[0]))
    theirs = time.perf_counter() - t
    print(f"\npHash of 2000 images: vectorised {ours * 1000:.0f} ms, imagehash loop "
          f"{theirs * 1000:.0f} ms, ratio {theirs / ours:.0f}x")


def full_size_ingest() -> None:
    """Decode the 1-3k px chest X-ray originals: draft-mode decode vs a plain full decode."""
    from PIL import Image

    from steadyval.data.decode import decode_file

    folder = (Path(__file__).resolve().parents[2] / "shared" / "data" / "chestxray_pneumonia_224"
              / "train_originals_sample")
    files = sorted(str(p) for p in folder.rglob("*.jpeg"))
    if not files:
        print("\n(../shared/data not beside the checkout: skipping the full-size ingest)")
        return
    t = time.perf_counter()
    for f in files:
        decode_file(f, 64)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            np.asarray(im.convert("L").resize((64, 64), Image.BOX))
    plain = time.perf_counter() - t
    print(f"\nfull-size JPEG originals ({len(files)} files, 1-3k px, one process): draft decode "
          f"{len(files) / ours:.0f} img/s, plain full decode {len(files) / plain:.0f} img/s, "
          f"ratio {plain / ours:.1f}x")


if __name__ == "__main__":
    main()
