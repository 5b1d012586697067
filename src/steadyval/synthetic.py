"""Synthetic radiograph-like datasets with faults planted on purpose.

The demo's input, the tests' fixtures and the benchmarks' scenarios. Images are grey
64 px (by default) "chest films": a bright body, two darker lungs with a patient-specific
shape and texture, and, for the positive class, a brighter lesion-like blob in a lung.
Sites (scanners) have their own intensity profile. Every fault is controlled by one
field of :class:`SyntheticSpec`, and :class:`Truth` records exactly what was planted.

Example::

    from steadyval.synthetic import SyntheticSpec, Site, generate
    spec = SyntheticSpec(n_train=400, n_val=100, site_mix={"train": [0.9, 0.1], "val": [0.1, 0.9]})
    out = generate(spec, "/tmp/shifted")       # writes /tmp/shifted/manifest.csv + images/
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

from steadyval._io import atomic_write_text
from steadyval.config import TrainConfig

SPLITS = ("train", "val", "test")
DEMO_SIZE = 48  # pixels: the demo's images and training size


def demo_config(seed: int = 0) -> TrainConfig:
    """The demo's baseline: the seed's Ex. 2 recipe, trained long enough to show the curves."""
    return TrainConfig(model="cnn_dropout", dropout=0.5, optimizer="adam", lr=1e-3, batch_size=32,
                       epochs=12, image_size=DEMO_SIZE, seed=seed)


@dataclass(frozen=True)
class Site:
    """A scanner / hospital with its own intensity profile (applied to images in [0, 1])."""

    name: str
    gamma: float = 1.0
    contrast: float = 1.0
    brightness: float = 0.0  # added after contrast, in units of the full range
    noise: float = 0.03  # std of additive Gaussian noise, full range = 1
    blur: float = 0.0  # Gaussian sigma in pixels at 64 px


DEFAULT_SITES = (
    Site("site_a", gamma=1.0, contrast=1.0, noise=0.03),
    Site("site_b", gamma=1.0, contrast=1.0, noise=0.03),
)
# Two scanners that look clearly different: a darker, low-contrast, blurred and noisy one.
DISTINCT_SITES = (
    Site("scanner_a", gamma=0.8, contrast=1.1, brightness=0.05, noise=0.02),
    Site("scanner_b", gamma=1.4, contrast=0.75, brightness=-0.08, noise=0.06, blur=1.0),
)


@dataclass
class SyntheticSpec:
    """What to generate. Defaults give a clean, balanced, two-site dataset."""

    n_train: int = 400
    n_val: int = 100
    n_test: int = 0
    image_size: int = 64
    prevalence: float = 0.5  # positive share, every split unless overridden
    split_prevalence: dict[str, float] = field(default_factory=dict)  # label shift
    sites: Sequence[Site] = DEFAULT_SITES
    site_mix: dict[str, Sequence[float]] = field(default_factory=dict)  # split -> site weights
    site_prevalence: dict[str, float] = field(default_factory=dict)  # shortcut: site -> positive share
    images_per_patient: int = 1  # mean images per patient (1 = every image its own patient)
    leak_patients: float = 0.0  # share of val/test patients that also have images in train
    duplicates: int = 0  # val images that are near-copies of train images
    label_noise: float = 0.0  # share of labels flipped
    corrupt: int = 0  # unreadable files: zero-byte, truncated, not an image
    blank: int = 0  # blank (constant) images: outliers
    lesion_strength: float = 0.45
    class_names: tuple[str, str] = ("normal", "pneumonia")  # sorted: positive second
    seed: int = 0


@dataclass
class Truth:
    """What was planted, by path (relative to the written dataset)."""

    flipped: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (train, val)
    leaked_groups: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    blank: list[str] = field(default_factory=list)


@dataclass
class Synthetic:
    """A generated dataset on disk."""

    path: Path  # the manifest CSV (layout "manifest") or the folder (layout "folder")
    records: pd.DataFrame
    truth: Truth


def generate(spec: SyntheticSpec, out: Path | str, layout: str = "manifest") -> Synthetic:
    """Render ``spec`` and write it under ``out``; return the path DATA to give steadyval.

    ``layout="manifest"`` writes ``images/`` and ``manifest.csv`` with path, label, split,
    patient_id and site columns; ``layout="folder"`` writes ``<split>/<class>/*.png`` (no
    metadata or patients: a folder cannot carry them).
    """
    if layout not in ("manifest", "folder"):
        raise ValueError(f"layout must be 'manifest' or 'folder', got {layout!r}")
    rng = np.random.default_rng(spec.seed)
    out = Path(out)
    table, pixels = _render(spec, rng)
    truth = Truth()
    names = spec.class_names

    # Label noise: flip a share of labels after rendering (the image keeps its true content).
    if spec.label_noise > 0:
        flip = rng.random(len(table)) < spec.label_noise
        table.loc[flip, "label"] = 1 - table.loc[flip, "label"]
        table["flipped"] = flip
    else:
        table["flipped"] = False

    paths = []
    for i, row in table.iterrows():
        stem = f"{row.split}_{i:06d}"
        if layout == "manifest":
            paths.append(f"images/{stem}.png")
        else:
            paths.append(f"{row.split}/{names[int(row.label)]}/{stem}.png")
    table["path"] = paths
    for rel, arr in zip(paths, pixels, strict=True):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(out / rel, optimize=False, compress_level=1)

    truth.flipped = table.loc[table["flipped"], "path"].tolist()
    truth.blank = table.loc[table["blank"], "path"].tolist()
    truth.leaked_groups = sorted(set(table.loc[table["leaked"], "patient_id"]))
    dup = table[table["copy_of"] >= 0]
    truth.duplicates = [(table.at[int(r.copy_of), "path"], r.path) for r in dup.itertuples()]

    for k in range(spec.corrupt):
        split = "train" if k % 2 == 0 else "val"
        label = k % 2
        rel = (f"images/corrupt_{k}.png" if layout == "manifest"
               else f"{split}/{names[label]}/corrupt_{k}.png")
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = k % 3
        if kind == 0:
            path.write_bytes(b"")
        elif kind == 1:
            full = out / paths[0]
            path.write_bytes(full.read_bytes()[:60])  # truncated PNG
        else:
            path.write_bytes(b"this is not an image\n")
        truth.corrupt.append(rel)
        table.loc[len(table)] = {**{c: table[c].iat[0] for c in table.columns},
                                 "path": rel, "split": split, "label": label,
                                 "patient_id": f"corrupt{k}", "flipped": False}

    table["label_name"] = [names[int(v)] for v in table["label"]]
    if layout == "manifest":
        manifest = table[["path", "label_name", "split", "patient_id", "site"]].rename(
            columns={"label_name": "label"})
        atomic_write_text(out / "manifest.csv", manifest.to_csv(index=False))
        data_path = out / "manifest.csv"
    else:
        data_path = out
    return Synthetic(data_path, table.reset_index(drop=True), truth)


# --------------------------------------------------------------------------- rendering

def _render(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[pd.DataFrame, list[np.ndarray]]:
    site_names = [s.name for s in spec.sites]
    sites = {s.name: s for s in spec.sites}
    rows: list[dict] = []
    patients: dict[str, dict] = {}
    n_by_split = {"train": spec.n_train, "val": spec.n_val, "test": spec.n_test}
    train_patients: list[str] = []
    for split in SPLITS:
        n = n_by_split[split]
        if n <= 0:
            continue
        weights = np.asarray(spec.site_mix.get(split, [1.0] * len(site_names)), dtype=float)
        weights = weights / weights.sum()
        made = 0
        while made < n:
            leak = split != "train" and train_patients and rng.random() < spec.leak_patients
            if leak:
                pid = train_patients[rng.integers(len(train_patients))]
                info = patients[pid]
            else:
                pid = f"p{len(patients):05d}"
                site = site_names[rng.choice(len(site_names), p=weights)]
                prev = spec.site_prevalence.get(site, spec.split_prevalence.get(split, spec.prevalence))
                info = {"site": site, "label": int(rng.random() < prev),
                        "anatomy": int(rng.integers(2**31))}
                patients[pid] = info
                if split == "train":
                    train_patients.append(pid)
            k = 1 if spec.images_per_patient <= 1 else int(rng.integers(1, 2 * spec.images_per_patient))
            for _ in range(min(k, n - made)):
                rows.append({"split": split, "patient_id": pid, "site": info["site"],
                             "label": info["label"], "anatomy": info["anatomy"],
                             "leaked": bool(leak), "copy_of": -1, "blank": False})
                made += 1
    table = pd.DataFrame(rows)
    pixels = [_image(spec, sites[r.site], r.anatomy, r.label, rng) for r in table.itertuples()]

    # Near-duplicates: val images replaced by slightly altered copies of train images,
    # under a new patient id (the same picture filed twice, not the same patient).
    val_idx = np.flatnonzero(table["split"] == "val")
    train_idx = np.flatnonzero(table["split"] == "train")
    if spec.duplicates > 0:
        chosen = rng.choice(val_idx, size=min(spec.duplicates, len(val_idx)), replace=False)
        sources = rng.choice(train_idx, size=len(chosen), replace=False)
        for v, t in zip(chosen, sources, strict=True):
            pixels[v] = _near_copy(pixels[t], rng)
            for col in ("site", "label", "anatomy"):
                table.at[v, col] = table.at[t, col]
            table.at[v, "copy_of"] = t
            table.at[v, "patient_id"] = f"dup{v:05d}"
    if spec.blank > 0:
        chosen = rng.choice(len(table), size=min(spec.blank, len(table)), replace=False)
        for i in chosen:
            pixels[i] = np.full_like(pixels[i], int(rng.choice([0, 255])))
            table.at[i, "blank"] = True
    return table, pixels


def _image(spec: SyntheticSpec, site: Site, anatomy: int, label: int,
           rng: np.random.Generator) -> np.ndarray:
    s = spec.image_size
    pat = np.random.default_rng(anatomy)  # the patient's own anatomy, shared by their images
    yy, xx = np.mgrid[0:s, 0:s] / s
    dy, dx = rng.normal(0, 0.015, 2)  # positioning differs a little between images
    body = _ellipse(yy, xx, 0.55 + dy, 0.5 + dx, 0.48 + pat.normal(0, 0.02), 0.40 + pat.normal(0, 0.02))
    img = 0.12 + 0.45 * _soft(body)
    lungs = []
    for side in (-1, 1):
        cy = 0.5 + dy + pat.normal(0, 0.02)
        cx = 0.5 + side * (0.17 + pat.normal(0, 0.015)) + dx
        ry, rx = 0.27 + pat.normal(0, 0.02), 0.12 + pat.normal(0, 0.01)
        lungs.append((cy, cx, ry, rx))
        img -= 0.28 * _soft(_ellipse(yy, xx, cy, cx, ry, rx))
    texture = _smooth_noise(pat, s, 6) * 0.06 + _smooth_noise(rng, s, 12) * 0.03
    img = img + texture
    if label:
        cy, cx, ry, rx = lungs[int(rng.integers(2))]
        ly = cy + rng.uniform(-0.6, 0.6) * ry
        lx = cx + rng.uniform(-0.5, 0.5) * rx
        sigma = rng.uniform(0.045, 0.075)
        img += spec.lesion_strength * np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / (2 * sigma**2))
    img = np.clip(img, 0, 1) ** site.gamma
    img = (img - 0.5) * site.contrast + 0.5 + site.brightness
    if site.blur > 0:
        img = gaussian_filter(img, site.blur * s / 64)
    img = img + rng.normal(0, site.noise, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2


def _soft(d: np.ndarray) -> np.ndarray:
    """1 inside an ellipse (d < 1), 0 outside, with a soft edge."""
    return 1.0 / (1.0 + np.exp(np.minimum((d - 1.0) * 12.0, 50.0)))


def _smooth_noise(rng: np.random.Generator, s: int, grid: int) -> np.ndarray:
    coarse = rng.normal(0, 1, (grid, grid))
    im = Image.fromarray(coarse.astype(np.float32), mode="F").resize((s, s), Image.BICUBIC)
    return np.asarray(im, dtype=np.float64)


def _near_copy(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same picture re-saved: resampled to another size and back, a slight level change."""
    s = arr.shape[0]
    other = max(8, int(round(s * rng.uniform(1.3, 2.0))))
    im = Image.fromarray(arr).resize((other, other), Image.BILINEAR).resize((s, s), Image.BOX)
    out = np.asarray(im, dtype=np.float64) + rng.uniform(-3, 3)
    return np.clip(out, 0, 255).astype(np.uint8)


def demo_spec(seed: int = 0) -> SyntheticSpec:
    """The demo's dataset: scanner-confounded split, class imbalance, leaks and a few bad files.

    Sized so that the whole doctor (audit, 3 baseline seeds, probes, up to 4 remedies and a
    combination over 3 seeds) finishes in a few minutes on a 2-core CPU: at 64 px it took
    5.7 min on a 2-core AMD EPYC without AVX-512 (2.5 min where bf16 is native), so the demo
    works at 48 px, which has about 0.57x the convolution work.
    """
    return SyntheticSpec(
        n_train=800, n_val=200, image_size=DEMO_SIZE, sites=DISTINCT_SITES,
        site_mix={"train": [0.9, 0.1], "val": [0.15, 0.85]}, prevalence=0.2, lesion_strength=0.3,
        images_per_patient=2, leak_patients=0.1, duplicates=12, label_noise=0.05,
        corrupt=3, blank=2, seed=seed,
    )
