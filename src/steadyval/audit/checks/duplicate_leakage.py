"""split.duplicate_leakage: exact and near-duplicate images across splits.

Near duplicates are found in two stages, both measured on real chest X-rays
(../shared/data/chestxray_pneumonia_224): resized copies of one film differ by 0-6 bits
of a 64-bit pHash, but distinct films of other patients come as close as 6 bits, so a
hash threshold alone flags distinct images of a homogeneous kind. Candidates within
``RADIUS`` bits (faiss binary index: 100k hashes in a few seconds, no Python pair loop)
are therefore confirmed by pixel correlation of the cached images: copies correlate at
>= 0.998, distinct films at <= 0.94.
"""

from __future__ import annotations

import faiss
import numpy as np

from steadyval.audit.base import AuditContext, Check
from steadyval.data.properties import gray
from steadyval.findings import Finding, Severity

RADIUS = 10  # candidate pHash distance (bits)
MIN_CORRELATION = 0.98
PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))


def near_duplicate_pairs(hashes: np.ndarray, query: np.ndarray, base: np.ndarray,
                         radius: int = RADIUS) -> np.ndarray:
    """(K, 2) index pairs (query row, base row) within ``radius`` bits, via faiss."""
    if len(query) == 0 or len(base) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    index = faiss.IndexBinaryFlat(hashes.shape[1] * 8)
    index.add(np.ascontiguousarray(hashes[base]))
    lims, _, found = index.range_search(np.ascontiguousarray(hashes[query]), radius + 1)
    q = np.repeat(query, np.diff(lims).astype(np.int64))
    return np.stack([q, base[found.astype(np.int64)]], axis=1)


def pixel_correlation(images: np.ndarray, pairs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Pearson correlation of the grey working-resolution images of each pair."""
    out = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        a = gray(images[p[:, 0]]).reshape(len(p), -1)
        b = gray(images[p[:, 1]]).reshape(len(p), -1)
        a -= a.mean(1, keepdims=True)
        b -= b.mean(1, keepdims=True)
        denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
        out[s:s + chunk] = np.where(denom > 0, (a * b).sum(1) / np.maximum(denom, 1e-9), 0.0)
    return out


class DuplicateLeakage(Check):
    """Exact (same file bytes or pixels) and verified near-duplicate images across splits."""

    id = "split.duplicate_leakage"
    needs = frozenset({"val"})
    remedies = ("data.dedupe", "split.rebalance")

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        split = ds.records["split"].to_numpy()
        paths = ds.records["path"].to_numpy()
        digests = ds.properties["file_digest"].to_numpy()
        out = []
        for a, b in PAIRS:
            base, query = np.flatnonzero(split == a), np.flatnonzero(split == b)
            if not len(base) or not len(query):
                continue
            cand = near_duplicate_pairs(ds.hashes, query, base)
            corr = pixel_correlation(ds.images, cand)
            exact = (digests[cand[:, 0]] == digests[cand[:, 1]]) & (digests[cand[:, 0]] != "")
            maybe = np.flatnonzero(~exact & (corr > 0.999))  # same pixels, different file
            exact[maybe] = [np.array_equal(ds.images[i], ds.images[j]) for i, j in cand[maybe]]
            keep = exact | (corr >= MIN_CORRELATION)
            pairs, corr, exact = cand[keep], corr[keep], exact[keep]
            if not len(pairs):
                continue
            n_query = len(set(pairs[:, 0]))
            share = n_query / len(query)
            severity = Severity.HIGH if share >= 0.05 or n_query >= 20 else Severity.MEDIUM
            if (a, b) == ("val", "test"):
                severity = Severity.MEDIUM if severity == Severity.HIGH else Severity.LOW
            order = np.argsort(-corr)
            listed = [{"a": paths[j], "b": paths[i], "correlation": float(c), "exact": bool(e)}
                      for (i, j), c, e in zip(pairs[order][:100], corr[order][:100], exact[order][:100])]
            out.append(self.finding(
                severity, f"{n_query} {b} image(s) duplicate {a} images",
                f"{n_query} of {len(query)} {b} images ({share:.1%}) are exact ({int(exact.sum())} "
                f"pairs) or near ({int((~exact).sum())} pairs) copies of {a} images. The model is "
                f"scored on pictures it trained on: {b} looks better than it is and moves with "
                f"{a}. Remove the copies or re-split so each picture is in one split.",
                {"splits": [a, b], "n_images": n_query, "share_of_split": share,
                 "n_exact_pairs": int(exact.sum()), "n_near_pairs": int((~exact).sum()),
                 "hash_radius_bits": RADIUS, "min_correlation": MIN_CORRELATION, "pairs": listed},
                [p["b"] for p in listed[:50]],
            ))
        return out
