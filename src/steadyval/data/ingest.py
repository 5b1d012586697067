"""DATA -> Dataset: read the input, decode each image once (cached), split, describe."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from steadyval._progress import progress_bar
from steadyval.data.cache import ImageCache, cache_root, file_key, refuse_inside
from steadyval.data.dataset import Dataset, UnreadableFile
from steadyval.data.decode import Decoded, decode_file, scale_to_uint8, to_working_size
from steadyval.data.properties import content_properties, phash
from steadyval.data.sources import Source, read_source
from steadyval.data.split import stratified_group_split
from steadyval.errors import DataError, did_you_mean

MIN_SIZE, MAX_SIZE = 16, 1024
# Below this many files, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 256


def load_dataset(
    data: Path | str,
    *,
    image_size: int = 64,
    positive: str | None = None,
    group: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Dataset:
    """Read DATA (folder, manifest CSV or MedMNIST .npz) into a :class:`Dataset`.

    Images are decoded once into a uint8 cache at ``image_size`` (outside DATA); files
    that cannot be used are listed in ``Dataset.unreadable`` and left out. Without a
    split in the input, a stratified, patient-grouped one is made with ``seed``.
    """
    if not MIN_SIZE <= image_size <= MAX_SIZE:
        raise DataError("--image-size", f"must be an integer in [{MIN_SIZE}, {MAX_SIZE}]",
                        image_size, "64 is a good default for auditing.")
    if not 0.0 < val_fraction < 0.9:
        raise DataError("--val-fraction", "must be in (0, 0.9)", val_fraction, "Try 0.2.")
    data = Path(data)
    source = read_source(data, group)
    root = cache_root(cache_dir)
    refuse_inside(root, data if data.is_dir() else data.parent, "the cache folder")
    if source.kind == "npz":
        images, metas, errors = _from_arrays(source, image_size)
    else:
        images, metas, errors = _decode_files(source, image_size, root, workers, progress)

    items = source.items
    unreadable = [UnreadableFile(p, r) for p, r in source.not_images]
    ok = np.array([e is None for e in errors], dtype=bool)
    unreadable += [UnreadableFile(items["path"].iat[i], errors[i] or "")
                   for i in np.flatnonzero(~ok)]
    if not ok.any():
        raise DataError(
            f"DATA '{data}'", "must contain at least one decodable image",
            f"{len(items)} file(s), none decodable (first: {unreadable[0].path}: "
            f"{unreadable[0].reason})" if unreadable else "no files",
            "Check that the paths point at PNG/JPEG/BMP/TIFF/DICOM images.",
        )
    records = items[ok].reset_index(drop=True)
    images = images[ok]
    metas = [m for m, good in zip(metas, ok, strict=True) if good]

    classes, positive = _classes(records, positive, str(data))
    records.insert(2, "label", (records["label_name"] == positive).astype(np.int64))
    metadata = list(source.metadata)
    # DICOM acquisition tags become metadata columns.
    tag_cols = sorted({k for m in metas for k in m if k.startswith("dicom_")})
    for col in tag_cols:
        records[col] = [m.get(col, "") for m in metas]
        metadata.append(col)

    notes: list[str] = []
    split_generated = _assign_split(records, val_fraction, seed, notes, str(data))
    properties = _properties(images, metas)
    return Dataset(
        source=str(data), kind=source.kind, records=records, images=images,
        properties=properties, hashes=phash(images), classes=classes, positive=positive,
        metadata=metadata, group_column=source.group_column, image_size=image_size,
        split_generated=split_generated, unreadable=unreadable, notes=notes, cache_dir=root,
    )


def _classes(records: pd.DataFrame, positive: str | None, what: str) -> tuple[tuple[str, str], str]:
    names = sorted(records["label_name"].unique(), key=_natural)
    if len(names) != 2:
        shown = ", ".join(f"'{n}' ({(records['label_name'] == n).sum()})" for n in names[:10])
        raise DataError(
            f"DATA '{what}'", "must have exactly two classes (steadyval is for binary classifiers)",
            f"{len(names)} class(es): {shown}",
            "Merge or remove classes (for a folder: keep two class sub-folders; for a manifest: two label values).",
        )
    classes = (names[0], names[1])
    if positive is None:
        return classes, names[1]
    if positive not in names:
        raise DataError("--positive", "must name one of the two classes", f"'{positive}'",
                        did_you_mean(positive, names))
    return classes, positive


def _natural(name: str) -> tuple[int, float, str]:
    # Numeric labels sort numerically ("0" < "1" < "10"), others alphabetically.
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)


def _assign_split(records: pd.DataFrame, val_fraction: float, seed: int, notes: list[str],
                  what: str) -> bool:
    split = records["split"].to_numpy(dtype=object)
    given = split != ""
    if given.any() and not given.all():
        raise DataError(
            f"DATA '{what}', column 'split'", "must be filled for every row or for none",
            f"{(~given).sum()} of {len(split)} rows without a split",
            "Fill in the missing values, or remove the column to let steadyval make a split.",
        )
    if not given.any():
        records["split"] = np.where(stratified_group_split(records, val_fraction, seed=seed),
                                    "val", "train")
        notes.append(f"No split was given: made a stratified, group-aware split "
                     f"({val_fraction:.0%} validation, seed {seed}).")
        return True
    if not (split == "train").any():
        raise DataError(f"DATA '{what}'", "needs training images", "no row in the train split",
                        "Mark some images as train.")
    if not (split == "val").any():
        train = np.flatnonzero(split == "train")
        val = stratified_group_split(records.iloc[train], val_fraction, seed=seed)
        split[train[val]] = "val"
        records["split"] = split
        notes.append(f"No validation split was given: moved {val.sum()} training images to "
                     f"validation (stratified, group-aware, seed {seed}).")
        return True
    return False


def _properties(images: np.ndarray, metas: list[dict]) -> pd.DataFrame:
    props = content_properties(images)
    meta = pd.DataFrame(metas)
    for col, default in (("width", images.shape[-1]), ("height", images.shape[-2]),
                         ("channels", images.shape[1]), ("bit_depth", 8), ("file_bytes", np.nan),
                         ("format", "array")):
        props[col] = meta[col].to_numpy() if col in meta else default
    props["width"] = props["width"].astype(float)
    props["height"] = props["height"].astype(float)
    props["aspect"] = props["width"] / props["height"].clip(lower=1)
    props["file_digest"] = meta["file_digest"].to_numpy() if "file_digest" in meta else ""
    return props


# --------------------------------------------------------------------------- decoding

def _from_arrays(source: Source, size: int) -> tuple[np.ndarray, list[dict], list[str | None]]:
    assert source.arrays is not None
    color = any(a.ndim == 3 and a.shape[-1] in (3, 4) for a in source.arrays)
    channels = 3 if color else 1
    out = np.empty((len(source.arrays), channels, size, size), dtype=np.uint8)
    metas: list[dict] = []
    for i, a in enumerate(source.arrays):
        a = np.asarray(a)
        if a.dtype != np.uint8:
            a = scale_to_uint8(a.astype(np.float32))
        if a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        im = to_working_size(a, size)
        out[i] = np.repeat(im, channels, axis=0) if im.shape[0] != channels else im
        metas.append({"width": a.shape[1], "height": a.shape[0],
                      "channels": 1 if a.ndim == 2 else a.shape[-1], "bit_depth": 8,
                      "format": "npz", "file_bytes": float(a.nbytes),
                      "file_digest": hashlib.blake2b(a.tobytes(), digest_size=12).hexdigest()})
    return out, metas, [None] * len(out)


def _decode_files(source: Source, size: int, root: Path, workers: int | None,
                  progress: bool) -> tuple[np.ndarray, list[dict], list[str | None]]:
    files = source.items["file"].tolist()
    keys = [file_key(f) if f else None for f in files]
    cache = ImageCache(root, source.root, size)
    cached = cache.load()
    results: list[Decoded | None] = [None] * len(files)
    for i, key in enumerate(keys):
        entry = cached.get(key) if key else None
        if entry is not None:
            results[i] = Decoded(None if entry.image is None else np.asarray(entry.image),
                                 entry.meta, entry.error)
    todo = [i for i, r in enumerate(results) if r is None]
    n_workers = workers or min(os.cpu_count() or 1, 8)
    with progress_bar(len(todo), "decoding images", progress) as advance:
        if len(todo) >= PARALLEL_THRESHOLD and n_workers > 1:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            chunk = max(16, len(todo) // (n_workers * 8))
            with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
                for i, res in zip(todo, pool.map(_decode_one, [(files[i], size) for i in todo],
                                                 chunksize=chunk), strict=True):
                    results[i] = res
                    advance()
        else:
            for i in todo:
                results[i] = _decode_one((files[i], size))
                advance()
    done: list[Decoded] = [r for r in results if r is not None]
    channels = 3 if any(r.image is not None and r.image.shape[0] == 3 for r in done) else 1
    images = np.zeros((len(done), channels, size, size), dtype=np.uint8)
    for i, r in enumerate(done):
        if r.image is not None:
            images[i] = r.image if r.image.shape[0] == channels else np.repeat(r.image, 3, axis=0)
    if todo:
        keep = [i for i, k in enumerate(keys) if k is not None]
        cache.save([keys[i] for i in keep], images[keep], [done[i].meta for i in keep],  # type: ignore[misc]
                   [done[i].error for i in keep])
    return images, [r.meta for r in done], [r.error for r in done]


def _decode_one(args: tuple[str, int]) -> Decoded:
    file, size = args
    if not file:
        return Decoded(None, error="empty path in manifest")
    result = decode_file(file, size)
    # A colour file whose channels are equal is grey: store it as one channel.
    if result.image is not None and result.image.shape[0] == 3:
        im = result.image.astype(np.int16)
        if np.abs(im[0] - im[1]).mean() < 1.0 and np.abs(im[1] - im[2]).mean() < 1.0:
            result.image = result.image[:1]
    return result
