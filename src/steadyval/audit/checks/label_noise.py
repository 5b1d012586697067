"""data.label_noise: images whose label is probably wrong (cleanlab on out-of-fold probabilities).

Severity is honest about its evidence: the out-of-fold model must itself be good
(AUROC >= ``MIN_AUROC``) before its disagreements count; a weak model flags hundreds of
"issues" on clean data (DESIGN.md). Only confident disagreements count towards severity:
the model, trained without the image, gives the other class at least ``CONFIDENT``.
"""

from __future__ import annotations

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.metrics import roc_auc_score

from steadyval.audit.base import AuditContext, Check
from steadyval.audit.features import out_of_fold_probabilities
from steadyval.findings import Finding, Severity

# The gate is measured against the given labels, which the noise itself degrades: with a
# share e of flipped labels the measured AUROC is about (1 - 2e) x the true one + e, so 10 %
# flips on images a model separates at 0.96 read as ~0.87 and below. The confidence rule
# is the main guard: a weak model's probabilities stay near 0.5 and rarely reach 0.9.
MIN_AUROC = 0.75
CONFIDENT = 0.9


class LabelNoise(Check):
    """Label issues from cleanlab, weighted by how good the model behind them is."""

    id = "data.label_noise"
    remedies = ("data.drop_label_issues",)

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        y = ds.labels
        if np.bincount(y, minlength=2).min() < 10:
            return []
        n_splits = max(2, int(min(5, np.bincount(y).min(), len(set(ctx.groups)))))
        probs = out_of_fold_probabilities(ctx.features, y, ctx.groups, ctx.seed, n_splits)
        auroc = float(roc_auc_score(y, probs[:, 1]))
        ranked = find_label_issues(y, probs, filter_by="prune_by_noise_rate",
                                   return_indices_ranked_by="self_confidence")
        given = probs[np.arange(len(y)), y]
        confident = ranked[given[ranked] <= 1 - CONFIDENT]
        share = len(confident) / len(y)
        split = ds.records["split"].to_numpy()
        paths = ds.records["path"].to_numpy()
        listed = [{"path": paths[i], "split": split[i], "given": ds.records["label_name"].iat[i],
                   "p_given": float(given[i])} for i in ranked[:100]]
        evidence = {"model_auroc_out_of_fold": auroc, "n_flagged": int(len(ranked)),
                    "n_confident": int(len(confident)), "confident_share": share,
                    "n_confident_in_val": int((split[confident] == "val").sum()),
                    "min_model_auroc": MIN_AUROC, "confidence": CONFIDENT, "issues": listed}
        if auroc < MIN_AUROC:
            if not len(ranked):
                return []
            return [self.finding(
                Severity.INFO, "Label check inconclusive: the image model is too weak",
                f"A model on image features reaches only AUROC {auroc:.2f} out of fold, so its "
                f"{len(ranked)} disagreements with the labels are not evidence of label noise.",
                evidence)]
        # Thresholds measured on synthetic twins (500 images): clean data gives 0.4-1 %
        # confident disagreements, 6 % planted flips give 2.2-4 % (85-95 % of them true flips).
        if share >= 0.05:
            severity = Severity.HIGH
        elif share >= 0.02 and len(confident) >= 5:
            severity = Severity.MEDIUM
        elif len(confident):
            severity = Severity.LOW
        else:
            return []
        return [self.finding(
            severity, f"{len(confident)} image(s) are probably mislabelled",
            f"A model that never saw these images (AUROC {auroc:.2f} out of fold) gives their "
            f"other class probability ≥ {CONFIDENT:.0%}: {len(confident)} images ({share:.1%}), "
            f"{evidence['n_confident_in_val']} of them in val, where each adds a large, "
            "jumpy term to val loss. Review them (ranked in the report).",
            evidence, [x["path"] for x in listed[:50]],
        )]
