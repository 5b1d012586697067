"""Turn DATA (a folder, a manifest CSV or a MedMNIST ``.npz``) into a table of items.

Nothing is decoded here: this stage only finds out what the user gave us and refuses,
with a message that says how to fix it, what cannot be used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from steadyval.data.decode import IMAGE_SUFFIXES
from steadyval.errors import DataError

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
GROUP_COLUMNS = ("group", "patient_id", "patient", "subject_id", "subject")
RESERVED_COLUMNS = ("path", "label", "split")
# Fields of every source's records besides the reserved columns.
INTERNAL_COLUMNS = ("file", "label_name", "group")
NPZ_SPLITS = ("train", "val", "test")


@dataclass
class Source:
    """What DATA holds, before decoding.

    ``items`` has one row per candidate image: ``path`` (as shown to users, relative to
    DATA where possible), ``file`` (absolute path, or "" for arrays), ``label_name``,
    ``split`` ("train"/"val"/"test" or ""), ``group`` ("" when unknown) and the
    metadata columns. ``arrays`` holds the images of an ``.npz`` input, indexed by row.
    """

    kind: str  # "folder" | "manifest" | "npz"
    root: Path
    items: pd.DataFrame
    metadata: list[str]
    group_column: str | None
    arrays: list[np.ndarray] | None = None
    not_images: list[tuple[str, str]] = field(default_factory=list)


def read_source(data: Path, group_column: str | None = None) -> Source:
    """Find out what kind of input ``data`` is and list its items."""
    data = Path(data)
    if not data.exists():
        raise DataError(
            f"DATA '{data}'", "must be an existing folder, manifest .csv or .npz file",
            "a path that does not exist", "Check the path (relative paths start from the current folder).",
        )
    if data.is_dir():
        if group_column:
            raise DataError(
                "--group", "applies to manifest CSV inputs only (folders carry no group column)",
                f"'{group_column}' with a folder", "Write a manifest CSV with a group column, or drop --group.",
            )
        return _read_folder(data)
    suffix = data.suffix.lower()
    if suffix == ".csv":
        return _read_manifest(data, group_column)
    if suffix == ".npz":
        return _read_npz(data)
    raise DataError(
        f"DATA '{data}'", "must be a folder, a manifest .csv or a MedMNIST-style .npz",
        f"a '{suffix or 'extensionless'}' file", "Point steadyval at the folder or the manifest instead.",
    )


# --------------------------------------------------------------------------- folders

def _read_folder(root: Path) -> Source:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subdirs if p.name.lower() in SPLIT_ALIASES]
    rows: list[dict[str, str]] = []
    not_images: list[tuple[str, str]] = []
    if split_dirs:
        for split_dir in split_dirs:
            split = SPLIT_ALIASES[split_dir.name.lower()]
            _collect_classes(root, split_dir, split, rows, not_images)
    else:
        _collect_classes(root, root, "", rows, not_images)
    if not rows:
        raise DataError(
            f"DATA folder '{root}'",
            "must hold one sub-folder per class (optionally under train/ val/ test/) with images in them",
            "no image files", "Arrange images as DATA/<class>/<image>.png or DATA/train/<class>/<image>.png.",
        )
    items = pd.DataFrame(rows, columns=["path", "file", "label_name", "split", "group"])
    return Source("folder", root, items, [], None, not_images=not_images)


def _collect_classes(
    root: Path, parent: Path, split: str, rows: list[dict[str, str]],
    not_images: list[tuple[str, str]],
) -> None:
    for class_dir in sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in sorted(class_dir.rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            rel = file.relative_to(root).as_posix()
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                not_images.append((rel, f"not an image file (extension '{file.suffix or 'none'}')"))
                continue
            rows.append({"path": rel, "file": str(file.resolve()), "label_name": class_dir.name,
                         "split": split, "group": ""})


# --------------------------------------------------------------------------- manifests

def _read_manifest(csv: Path, group_column: str | None) -> Source:
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(
            f"manifest '{csv}'", "must be a CSV file with a header row (path,label,…)",
            f"a file pandas cannot parse ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            "Save the manifest as UTF-8 CSV with a header row.",
        ) from None
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise DataError(
            f"manifest '{csv}'", "needs the columns 'path' and 'label'",
            f"columns {list(table.columns)}", f"Add (or rename a column to) {', '.join(missing)}.",
        )
    if table.empty:
        raise DataError(f"manifest '{csv}'", "must list at least one image", "no rows",
                        "Add one row per image.")
    empty = np.flatnonzero(table["label"].str.strip() == "")
    if len(empty):
        rows = ", ".join(str(i + 2) for i in empty[:10]) + (" …" if len(empty) > 10 else "")
        raise DataError(
            f"manifest '{csv}'", "every row needs a label",
            f"{len(empty)} row(s) with an empty label (CSV line {rows})",
            "Fill in those labels, or remove the rows if the images are unlabelled.",
        )
    group_col = _pick_group_column(csv, table, group_column)
    split = np.full(len(table), "", dtype=object)
    if "split" in table.columns:
        raw = table["split"].str.strip().str.lower()
        bad = sorted(set(raw) - set(SPLIT_ALIASES) - {""})
        if bad:
            raise DataError(
                f"manifest '{csv}', column 'split'", "values must be train, val or test",
                f"{bad[:5]}", "Rename those values (valid/validation → val) or drop the column.",
            )
        split = raw.map(lambda s: SPLIT_ALIASES.get(s, "")).to_numpy(dtype=object)
    base = csv.resolve().parent
    files = [str((base / p.strip()).resolve()) if p.strip() else "" for p in table["path"]]
    metadata = [c for c in table.columns
                if c not in RESERVED_COLUMNS and c != group_col]
    # A metadata column named like one of the records' own fields keeps its values under
    # another name instead of overwriting that field (a 'label_name' column flipped the
    # positive class of the IDC manifest; a 'group' column beside --group patient_id
    # replaced the patient ids).
    names = {c: f"manifest_{c}" if c in INTERNAL_COLUMNS else c for c in metadata}
    items = pd.DataFrame({
        "path": table["path"].str.strip(),
        "file": files,
        "label_name": table["label"].str.strip(),
        "split": split,
        "group": table[group_col].str.strip() if group_col else "",
    })
    for col in metadata:
        items[names[col]] = table[col].str.strip()
    return Source("manifest", base, items, [names[c] for c in metadata], group_col)


def _pick_group_column(csv: Path, table: pd.DataFrame, requested: str | None) -> str | None:
    if requested:
        if requested not in table.columns:
            from steadyval.errors import did_you_mean

            raise DataError(
                f"--group for manifest '{csv}'", "must name a column of the manifest",
                f"'{requested}'", did_you_mean(requested, table.columns),
            )
        return requested
    for name in GROUP_COLUMNS:
        if name in table.columns:
            return name
    return None


# --------------------------------------------------------------------------- npz

def _read_npz(path: Path) -> Source:
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # zip and pickle errors of every kind: the file is what's wrong
        raise DataError(
            f"DATA '{path}'", "must be a readable .npz (numpy savez) file",
            f"a file numpy cannot open ({type(exc).__name__})", "Re-save it with numpy.savez.",
        ) from None
    with npz:
        keys = set(npz.files)
        present = [s for s in NPZ_SPLITS if f"{s}_images" in keys and f"{s}_labels" in keys]
        if "train" not in present:
            raise DataError(
                f"DATA '{path}'",
                "must use the MedMNIST layout: train_images and train_labels (val_/test_ optional)",
                f"keys {sorted(keys)}", "Rename the arrays, e.g. np.savez(f, train_images=X, train_labels=y).",
            )
        rows: list[dict[str, str]] = []
        arrays: list[np.ndarray] = []
        for split in present:
            images, labels = npz[f"{split}_images"], np.asarray(npz[f"{split}_labels"])
            labels = labels.reshape(len(labels), -1)
            if images.ndim not in (3, 4) or len(images) != len(labels) or labels.shape[1] != 1:
                raise DataError(
                    f"DATA '{path}', arrays {split}_images/{split}_labels",
                    "need N images (N,H,W) or (N,H,W,C) and N single labels",
                    f"shapes {images.shape} and {labels.shape}", "Fix the arrays' shapes.",
                )
            for i in range(len(images)):
                rows.append({"path": f"{split}_images[{i}]", "file": "",
                             "label_name": str(labels[i, 0].item()), "split": split, "group": ""})
            arrays.extend(np.asarray(images))
    items = pd.DataFrame(rows, columns=["path", "file", "label_name", "split", "group"])
    return Source("npz", path.resolve().parent, items, [], None, arrays=arrays)
