"""The decoded-image cache: one uint8 array per (input, resolution), outside the data folder.

Each file is keyed by absolute path, size and modification time, so a re-run decodes only
files that are new or changed, and a changed working resolution gets its own cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steadyval.errors import DataError

CACHE_VERSION = 1


def cache_root(cache_dir: Path | None = None) -> Path:
    """``cache_dir``, else $STEADYVAL_CACHE, else $XDG_CACHE_HOME/steadyval, else ~/.cache/steadyval."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser().resolve()
    env = os.environ.get("STEADYVAL_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "steadyval").resolve()


def refuse_inside(path: Path, data_root: Path, what: str) -> None:
    """Raise when ``path`` lies inside the user's data folder: we never write there."""
    path, data_root = Path(path).resolve(), Path(data_root).resolve()
    if path == data_root or data_root in path.parents:
        raise DataError(
            what, "must be outside the data folder (steadyval never writes into your data)",
            f"'{path}', inside '{data_root}'", "Choose a folder elsewhere.",
        )


def file_key(file: str) -> str | None:
    """Cache key of one file, or None when it cannot be stat'ed (then it is never cached)."""
    try:
        st = os.stat(file)
    except OSError:
        return None
    return f"{file}|{st.st_size}|{st.st_mtime_ns}"


@dataclass
class CacheEntry:
    """What the cache holds for one file."""

    image: np.ndarray | None  # (C, S, S) uint8
    meta: dict[str, Any]
    error: str | None


class ImageCache:
    """A directory with ``images.npy`` (N, C, S, S) and ``entries.json`` for one input."""

    def __init__(self, root: Path, source_root: Path, size: int) -> None:
        digest = hashlib.sha1(f"{Path(source_root).resolve()}|{size}".encode()).hexdigest()[:16]
        self.dir = Path(root) / f"v{CACHE_VERSION}-{digest}"
        self.size = size

    def load(self) -> dict[str, CacheEntry]:
        """All cached entries by key; empty when there is no usable cache."""
        try:
            index = json.loads((self.dir / "entries.json").read_text())
            images = np.load(self.dir / "images.npy", mmap_mode="r")
        except (OSError, ValueError):
            return {}
        if index.get("version") != CACHE_VERSION or index.get("size") != self.size:
            return {}
        out: dict[str, CacheEntry] = {}
        for i, (key, meta, error) in enumerate(zip(index["keys"], index["meta"], index["errors"], strict=True)):
            out[key] = CacheEntry(None if error else images[i], meta, error)
        return out

    def save(self, keys: list[str], images: np.ndarray, metas: list[dict[str, Any]],
             errors: list[str | None]) -> None:
        """Replace the cache atomically (a new directory renamed over the old one)."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.dir.name}.", dir=self.dir.parent))
        try:
            np.save(tmp / "images.npy", images)
            (tmp / "entries.json").write_text(json.dumps(
                {"version": CACHE_VERSION, "size": self.size, "keys": keys,
                 "meta": metas, "errors": errors}))
            old = self.dir.with_name(self.dir.name + ".old")
            if self.dir.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self.dir, old)
            os.replace(tmp, self.dir)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
