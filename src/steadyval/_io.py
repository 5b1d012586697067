"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def check_out_dir(path: Path, option: str) -> None:
    """Refuse an output folder that cannot be one (a file, under a file, unwritable); creates nothing."""
    from steadyval.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(option, "must be a folder (steadyval writes several files into it)",
                          f"'{path}', an existing file", f"Choose another {option}, or move the file away.")
    _check_writable(path, option)


def check_out_file(path: Path, option: str, example: str = "results.json") -> None:
    """Refuse an output file path that cannot be written (a folder, under a file, unwritable)."""
    from steadyval.errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(option, "must be a file path", f"'{path}', an existing folder",
                          f"Name a file, e.g. {path / example}.")
    _check_writable(path.parent, option)


def _check_writable(folder: Path, option: str) -> None:
    from steadyval.errors import ConfigError

    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(option, "must lie in a folder", f"'{folder}', under '{existing}', which is a file",
                          f"Choose another {option}.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(option, "must be somewhere steadyval may write", f"'{folder}' ('{existing}' is not "
                          "writable)", f"Choose a {option} in a folder you can write.")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write strict JSON (indented, UTF-8) atomically; NaN and infinities become null."""
    text = json.dumps(_strict(obj), indent=2, ensure_ascii=False, default=_jsonable, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _strict(obj: Any) -> Any:
    # JSON has no NaN: other parsers (JavaScript, jq) reject Python's NaN token. numpy
    # scalars and arrays reach the writer through evidence dicts: they become lists first.
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _strict(obj.tolist())
    return obj


def _jsonable(obj: Any) -> Any:
    # numpy scalars and arrays were turned into lists by _strict; what is left is e.g. a Path.
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
