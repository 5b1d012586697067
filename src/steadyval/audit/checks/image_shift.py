"""split.image_shift: image statistics differ between train and val.

Two kinds of evidence: per-property Kolmogorov-Smirnov tests (which property moved), and
a cross-validated domain classifier that tries to tell train from val on image features.
Its AUROC is compared with its own sampling error, so a small val set cannot fake a shift.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from steadyval.audit.base import AuditContext, Check
from steadyval.audit.features import out_of_fold_probabilities
from steadyval.audit.stats import auc_se, ks_test
from steadyval.data.properties import CONTENT_PROPERTIES
from steadyval.findings import Finding, Severity


class ImageShift(Check):
    """Property drift (KS) and a train-vs-val domain classifier (AUROC)."""

    id = "split.image_shift"
    needs = frozenset({"val"})
    remedies = ("aug.intensity", "split.rebalance")

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        tr, va = ds.split_index("train"), ds.split_index("val")
        drift = {}
        for prop in (*CONTENT_PROPERTIES, "width", "height"):
            a = ds.properties[prop].to_numpy(dtype=float)
            d, p_ks = ks_test(a[tr], a[va], ctx.effective_n(tr), ctx.effective_n(va))
            drift[prop] = {"ks": d, "p_value": p_ks,
                           "train_median": float(np.median(a[tr])), "val_median": float(np.median(a[va]))}
        idx = np.concatenate([tr, va])
        is_val = np.r_[np.zeros(len(tr), int), np.ones(len(va), int)]
        groups = ctx.groups[idx]
        n_splits = int(min(5, len(va), len(set(groups[is_val == 1]))))
        auc, se = 0.5, float("inf")
        if n_splits >= 2:
            p = out_of_fold_probabilities(ctx.features[idx], is_val, groups, ctx.seed, n_splits)[:, 1]
            auc = float(roc_auc_score(is_val, p))
            se = auc_se(auc, ctx.effective_n(va), ctx.effective_n(tr))
        z = (auc - 0.5) / se
        top = max(drift, key=lambda k: drift[k]["ks"])
        ks, ks_p = drift[top]["ks"], drift[top]["p_value"]
        if (auc >= 0.8 and z > 4) or (ks >= 0.4 and ks_p < 1e-6):
            severity = Severity.HIGH
        elif (auc >= 0.65 and z > 3) or (ks >= 0.2 and ks_p < 1e-3):
            severity = Severity.MEDIUM
        elif (auc >= 0.58 and z > 3) or (ks >= 0.1 and ks_p < 1e-3):
            severity = Severity.LOW
        else:
            return []
        return [self.finding(
            severity, f"Train and val images differ (domain classifier AUROC {auc:.2f})",
            f"A classifier tells train from val images with AUROC {auc:.2f} (chance is 0.50, "
            f"±{1.96 * se:.2f} here); the property that moved most is {top} (KS = {ks:.2f}, "
            f"median {drift[top]['train_median']:.3g} in train vs {drift[top]['val_median']:.3g} "
            "in val). Val then measures another image population.",
            {"domain_auroc": auc, "domain_auroc_se": se, "z": z, "most_shifted_property": top,
             "property_drift": drift},
        )]
