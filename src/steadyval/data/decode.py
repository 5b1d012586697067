"""Decode one image file into a small uint8 array at the working resolution.

Runs in worker processes, so it imports only Pillow, numpy and (lazily) pydicom, and
never raises: a file that cannot be used comes back with ``error`` set and no image.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".gif", ".webp"}
)
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
# DICOM acquisition tags that become metadata columns (site / device / view confounders).
DICOM_TAGS = (
    "Manufacturer", "ManufacturerModelName", "StationName", "InstitutionName",
    "ViewPosition", "Modality", "BodyPartExamined",
)


@dataclass
class Decoded:
    """One decoded file: the image (C, S, S) uint8 or None, what we learned, and why it failed."""

    image: np.ndarray | None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def decode_file(path: str, size: int) -> Decoded:
    """Decode ``path`` to a (1 or 3, size, size) uint8 array; never raises."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return Decoded(None, error="file not found")
    except OSError as exc:
        return Decoded(None, error=f"cannot read file: {exc.strerror or exc}")
    meta: dict[str, Any] = {
        "file_bytes": len(data),
        "file_digest": hashlib.blake2b(data, digest_size=12).hexdigest(),
    }
    if not data:
        return Decoded(None, meta, "empty file (0 bytes)")
    suffix = Path(path).suffix.lower()
    try:
        if suffix in DICOM_SUFFIXES or data[128:132] == b"DICM":
            array, extra = _read_dicom(data)
        else:
            array, extra = _read_pillow(data, size)
    except (UnidentifiedImageError, SyntaxError):
        return Decoded(None, meta, "not an image Pillow or pydicom can decode")
    except Exception as exc:  # decoder libraries raise many kinds; the file is what's wrong
        return Decoded(None, meta, f"cannot decode: {type(exc).__name__}: {exc}"[:300])
    meta.update(extra)
    if array.size == 0 or min(array.shape[:2]) == 0:
        return Decoded(None, meta, "image has no pixels")
    return Decoded(to_working_size(array, size), meta)


def _read_pillow(data: bytes, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        fmt = im.format or "unknown"
        mode = im.mode
        # JPEG DCT scaling: decode at (at least) twice the working size instead of full size.
        # Radiographs are 1-3k px; this is the main cost of a cold ingest.
        if fmt == "JPEG":
            im.draft(im.mode, (size * 2, size * 2))
        im.load()  # truncated files fail here, not later
        bit_depth = 16 if mode in ("I;16", "I;16B", "I;16L", "I") else 8
        if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            array = scale_to_uint8(np.asarray(im, dtype=np.float32))
        elif mode in ("L", "1", "LA"):
            array = np.asarray(im.convert("L"))
        else:  # RGB, RGBA, P, CMYK, YCbCr, …: alpha is dropped, palettes expanded
            array = np.asarray(im.convert("RGB"))
    channels = 1 if array.ndim == 2 else array.shape[2]
    return array, {
        "width": width, "height": height, "format": fmt, "mode": mode,
        "channels": channels, "bit_depth": bit_depth,
    }


def _read_dicom(data: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    pixels = ds.pixel_array
    if pixels.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 1:
        pixels = pixels[pixels.shape[0] // 2]  # multi-frame: the middle frame
    array = apply_modality_lut(pixels, ds)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        array = apply_voi_lut(array, ds)
    array = scale_to_uint8(np.asarray(array, dtype=np.float32))
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        array = 255 - array  # MONOCHROME1 stores bright as low values
    meta: dict[str, Any] = {
        "width": int(pixels.shape[-1] if pixels.ndim == 2 else pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "format": "DICOM", "mode": str(getattr(ds, "PhotometricInterpretation", "")),
        "channels": 1 if array.ndim == 2 else int(array.shape[2]),
        "bit_depth": int(getattr(ds, "BitsStored", 16) or 16),
    }
    for tag in DICOM_TAGS:
        value = ds.get(tag)
        if value not in (None, ""):
            meta[f"dicom_{tag}"] = str(value)
    return array, meta


def scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map a high-bit-depth image to 0..255 by its own min and max (no absolute scale exists)."""
    finite = np.isfinite(array)
    if not finite.any():
        return np.zeros(array.shape, dtype=np.uint8)
    lo, hi = float(array[finite].min()), float(array[finite].max())
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.uint8)
    scaled = (np.where(finite, array, lo) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def to_working_size(array: np.ndarray, size: int) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 -> (C, size, size) uint8, area-averaged when shrinking."""
    im = Image.fromarray(array)
    resample = Image.BOX if min(im.size) >= size else Image.BILINEAR
    im = im.resize((size, size), resample=resample)
    out = np.asarray(im)
    if out.ndim == 2:
        return out[None]
    return np.ascontiguousarray(out.transpose(2, 0, 1))
