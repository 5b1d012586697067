"""Small C kernels, compiled on first use with the machine's C compiler and loaded with ctypes.

A kernel is a plain C file next to this module (no Python or torch headers, so it compiles in
well under a second; ``bf16.h`` holds what they share); the shared library is cached under
``$STEADYVAL_CACHE/native/``, keyed by the source and headers, the compiler, its flags and the
CPU, and written atomically. It is built with
OpenMP where the compiler has it (then it shares the OpenMP runtime torch has loaded), else
without (one thread). Where no compiler is found, the compile fails, or
``STEADYVAL_NATIVE=0`` is set, :func:`load` returns None and the callers use torch's own ops,
which give the same results (their tests check it); only speed differs.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from steadyval.data.cache import cache_root

# -ffp-contract=off: no fused multiply-adds, so that the kernels round as torch's element-wise ops do;
# -fno-trapping-math lets floorf vectorise (nothing here reads floating-point exception flags).
FLAGS = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-trapping-math", "-shared", "-fPIC"]
OPENMP = "-fopenmp"


def enabled() -> bool:
    """False when ``STEADYVAL_NATIVE=0``: torch's ops everywhere (for A/B runs and debugging)."""
    return os.environ.get("STEADYVAL_NATIVE", "1") != "0"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _native_flag(compiler: str) -> list[str]:
    """-march=native where the compiler takes it (gcc, clang on x86), else -mcpu=native, else none."""
    for flag in ("-march=native", "-mcpu=native"):
        probe = subprocess.run([compiler, flag, "-x", "c", "-E", "-", "-o", os.devnull], input=b"",
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [flag]
    return []


@functools.cache
def load(name: str) -> ctypes.CDLL | None:
    """The compiled ``name``.c of this folder, or None where it cannot be built here."""
    if not enabled():
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    source = Path(__file__).with_name(f"{name}.c")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, timeout=30).stdout
        flags = FLAGS + _native_flag(compiler)
        headers = [h.read_bytes() for h in sorted(source.parent.glob("*.h"))]  # what the sources include
        errors = ""
        for extra in ([OPENMP], []):
            key = hashlib.sha256(b"\0".join([source.read_bytes(), *headers, compiler.encode(),
                                             " ".join(flags + extra).encode(), version, _cpu_flags().encode(),
                                             platform.machine().encode()]))
            library = cache_root() / "native" / f"{name}-{key.hexdigest()[:16]}.so"
            if library.exists():
                return ctypes.CDLL(str(library))
            error = _build(compiler, flags + extra, source, library)
            if error is None:
                return ctypes.CDLL(str(library))
            errors += error
        warnings.warn(f"steadyval: compiling {source.name} failed, using torch's ops (same results, slower): "
                      f"{errors[:500]}", RuntimeWarning, stacklevel=2)
        return None
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"steadyval: could not build or load {source.name}, using torch's ops "
                      f"(same results, slower): {error}", RuntimeWarning, stacklevel=2)
        return None


def _build(compiler: str, flags: list[str], source: Path, library: Path) -> str | None:
    """Compile ``source`` into ``library`` (a temporary file, then renamed); the compiler's errors, or None."""
    library.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=library.parent)
    os.close(fd)
    try:
        build = subprocess.run([compiler, *flags, str(source), "-o", tmp], capture_output=True, timeout=120)
        if build.returncode != 0:
            return build.stderr.decode(errors="replace")
        os.replace(tmp, library)
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def bind(name: str, symbols: tuple[str, ...], argtypes: list[type], restype: type | None = None,
         ) -> dict[str, ctypes._CFuncPtr] | None:
    """The functions ``symbols`` of the compiled ``name``.c, all of one signature, or None where it is not built."""
    library = load(name)
    if library is None:
        return None
    functions = {}
    for symbol in symbols:
        fn = getattr(library, symbol)
        fn.argtypes, fn.restype = argtypes, restype
        functions[symbol] = fn
    return functions


def check(status: int, kernel: str, shape: tuple[int, ...]) -> None:
    """Raise for a first-layer kernel's status (conv.c, block.c): -1 out of memory, else no
    function for ``shape``; 0 passes."""
    if status == -1:
        raise MemoryError(f"no memory for the per-image weight gradients of a {shape} convolution")
    if status:
        raise RuntimeError(f"{kernel} has no kernel for a {shape} convolution")


def built(names: tuple[str, ...]) -> list[str]:
    """Those of ``names`` that are built and loaded here (building them if needed)."""
    return [name for name in names if load(name) is not None]
