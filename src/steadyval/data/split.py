"""Stratified, patient-grouped train/val splits (scikit-learn's StratifiedGroupKFold)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def group_ids(records: pd.DataFrame) -> np.ndarray:
    """(N,) group ids; an image without a group ("") is its own group."""
    groups = records["group"].astype(str).to_numpy(dtype=object).copy()
    blank = groups == ""
    groups[blank] = [f"\0row{i}" for i in np.flatnonzero(blank)]
    return groups


MAX_LEVELS = 30  # a metadata column with more levels is an id, not a site / device / view


def categorical_columns(records: pd.DataFrame, columns: Sequence[str], max_levels: int = MAX_LEVELS) -> list[str]:
    """Columns that look like site / device / view: 2..max_levels levels, and no more than
    one level per 5 rows (else each level is too rare to compare)."""
    cap = min(max_levels, max(2, len(records) // 5))
    return [c for c in columns if 2 <= records[c].astype(str).nunique() <= cap]


def fold_masks(records: pd.DataFrame, n_splits: int, by: Sequence[str] = (), seed: int = 0) -> list[np.ndarray]:
    """One boolean val mask per fold: stratified by label x ``by``, grouped by patient."""
    groups = group_ids(records)
    strata = strata_labels(records, by, n_splits)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    masks = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" on small data
        for _, val_idx in splitter.split(np.zeros(len(records)), strata, groups):
            mask = np.zeros(len(records), dtype=bool)
            mask[val_idx] = True
            masks.append(mask)
    return masks


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
    groups = group_ids(records)
    strata = strata_labels(records, by, n_splits)
    n_groups = len(set(groups))
    # Tiny datasets: never ask for more folds than the largest stratum or the groups allow.
    largest = int(pd.Series(strata).value_counts().max())
    n_splits = min(n_splits, n_groups, largest)
    if n_splits < 2:
        # Too few groups to split at all: put the smallest group in validation.
        smallest = pd.Series(groups).value_counts().index[-1]
        return groups == smallest
    # Folds differ in size when groups are uneven: take the fold closest to val_fraction.
    return min(fold_masks(records, n_splits, by, seed), key=lambda mask: abs(mask.mean() - val_fraction))


def write_split(
    data: Path | str,
    out: Path | str,
    *,
    by: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    group: str | None = None,
) -> pd.DataFrame:
    """Write a manifest CSV with a new train/val split; files are never moved.

    Train and val are pooled and re-split stratified by label x ``by`` (default: every
    categorical metadata column) and grouped by patient; a given test split is kept.
    Returns the written table.
    """
    from steadyval._io import atomic_write_text
    from steadyval.data.cache import refuse_inside
    from steadyval.data.sources import read_source
    from steadyval.errors import DataError, did_you_mean

    data, out = Path(data), Path(out)
    source = read_source(data, group)
    if source.kind == "npz":
        raise DataError(
            f"DATA '{data}'", "split writes a manifest of image files; an .npz holds arrays",
            "an .npz input", "Export the images to files first, or keep the .npz's own split.",
        )
    if out.suffix.lower() != ".csv":
        raise DataError("-o/--out", "must be a .csv file path", f"'{out}'", "Use e.g. -o split.csv.")
    refuse_inside(out, data if data.is_dir() else data.parent, "-o/--out")
    items = source.items.copy()
    if by is None:
        by = categorical_columns(items, source.metadata, max_levels=20)
    for col in by:
        if col not in source.metadata:
            raise DataError("--by", "must name a metadata column of DATA", f"'{col}'",
                            did_you_mean(col, source.metadata) if source.metadata
                            else "This input has no metadata columns.")
    items["label"] = items["label_name"]
    test = items["split"] == "test"
    pool = items[~test].reset_index(drop=True)
    val = stratified_group_split(pool, val_fraction, by=list(by), seed=seed)
    pool["split"] = np.where(val, "val", "train")
    table = pd.concat([pool, items[test]], ignore_index=True)
    base = out.resolve().parent
    table["path"] = [_relative(f, base) for f in table["file"]]
    columns = ["path", "label", "split", "group", *source.metadata]
    table = table[columns].rename(columns={"group": source.group_column or "group"})
    if not source.group_column:
        table = table.drop(columns=["group"])
    atomic_write_text(out, table.to_csv(index=False))
    return table


def _relative(file: str, base: Path) -> str:
    try:
        return Path(os.path.relpath(file, base)).as_posix()
    except ValueError:  # another drive on Windows
        return file
