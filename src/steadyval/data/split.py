"""Stratified, patient-grouped train/val splits (scikit-learn's StratifiedGroupKFold)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def strata_labels(records: pd.DataFrame, by: Sequence[str], min_count: int) -> np.ndarray:
    """One stratum per label x metadata combination; rare combinations fall back to the label.

    A stratum with fewer members than folds cannot be spread over the folds, and
    StratifiedGroupKFold then balances it poorly, so it is merged into its label's stratum.
    """
    label = records["label"].astype(str)
    if not by:
        return label.to_numpy()
    combo = label.str.cat([records[c].astype(str) for c in by], sep="|")
    counts = combo.map(combo.value_counts())
    return np.where(counts >= min_count, combo, label).astype(str)


def stratified_group_split(
    records: pd.DataFrame,
    val_fraction: float = 0.2,
    by: Sequence[str] = (),
    seed: int = 0,
) -> np.ndarray:
    """Boolean mask of the rows to put in validation.

    Rows are stratified by label x the ``by`` columns and grouped by ``records['group']``
    (rows with an empty group are their own group), so no patient straddles the split.
    """
    n_splits = max(2, round(1.0 / val_fraction))
    groups = records["group"].astype(str).to_numpy(dtype=object)
    blank = groups == ""
    groups[blank] = [f"\0row{i}" for i in np.flatnonzero(blank)]
    strata = strata_labels(records, by, n_splits)
    n_groups = len(set(groups))
    if n_groups < n_splits:
        # Too few groups to split at all: put the smallest group in validation.
        smallest = pd.Series(groups).value_counts().index[-1]
        return groups == smallest
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    best_mask, best_err = None, np.inf
    # Folds differ in size when groups are uneven: take the fold closest to val_fraction.
    for _, val_idx in splitter.split(np.zeros(len(records)), strata, groups):
        mask = np.zeros(len(records), dtype=bool)
        mask[val_idx] = True
        err = abs(mask.mean() - val_fraction)
        if err < best_err:
            best_mask, best_err = mask, err
    assert best_mask is not None  # n_splits >= 2 folds were produced
    return best_mask
