"""The C max-pooling kernel: torch's outputs and gradients bit for bit, and when it applies."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from steadyval.config import TrainConfig
from steadyval.train import native, pool
from steadyval.train.models import build_model
from steadyval.train.pool import MaxPool2d, fast_path

needs_compiler = pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine (cc, gcc, clang)")
BITS = {torch.float32: torch.int32, torch.bfloat16: torch.int16}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit, except that any NaN equals any NaN (torch writes NaNs with other bits)."""
    nan = torch.isnan(a)
    channels_last = torch.channels_last
    return (torch.equal(nan, torch.isnan(b))
            and a.is_contiguous(memory_format=channels_last) == b.is_contiguous(memory_format=channels_last)
            and torch.equal(a.view(BITS[a.dtype])[~nan], b.view(BITS[b.dtype])[~nan]))


def _batch(shape: tuple[int, int, int, int], dtype: torch.dtype) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(shape).to(dtype)
    x[0, :, :4, :4] = 0.0  # a window of ties
    x[0, :, 0, 1] = -0.0  # -0 after +0: equal, so the first (+0) wins
    if shape[-2] >= 4 and shape[-1] >= 4:
        x[0, :, 2:4, 0:2] = torch.tensor([[-0.0, -1.0], [-2.0, -3.0]])  # a -0 maximum (ReLU keeps -0)
        x[0, :, 2:4, 2:4] = -1.5  # a negative maximum (ReLU makes it +0)
    x[-1, :, 2:4, 2:4] = float("-inf")  # every value -inf: the first wins
    x[-1, 0, 0, 1] = float("nan")
    x[-1, 0, 1, 1] = float("nan")  # two NaNs in one window
    return x.contiguous(memory_format=torch.channels_last)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
# the last two are above the C code's MIN_PARALLEL elements: shared among the threads
@pytest.mark.parametrize("shape", [(3, 5, 8, 8), (4, 32, 17, 23), (1, 1, 2, 3), (16, 8, 64, 64), (8, 16, 65, 67)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("relu", [False, True])
def test_outputs_and_gradients_are_torch_s_bit_for_bit(dtype: torch.dtype, shape: tuple[int, int, int, int],
                                                        threads: int, relu: bool) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _check_against_torch(shape, dtype, relu)
    finally:
        torch.set_num_threads(before)


def _check_against_torch(shape: tuple[int, int, int, int], dtype: torch.dtype, relu: bool) -> None:
    x = _batch(shape, dtype)
    assert fast_path(x)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_theirs = MaxPool2d(2, relu=relu)(ours), F.max_pool2d(theirs, 2)
    if relu:  # torch's max pooling, then its ReLU (values and threshold_backward)
        y_theirs = F.relu(y_theirs)
        if shape[-2] >= 4 and shape[-1] >= 4:
            assert (y_theirs == 0).any() and (y_theirs > 0).any()  # both sides of the ReLU are tested
            assert torch.signbit(y_theirs[0, :, 1, 0]).all() and not torch.signbit(y_theirs[0, :, 1, 1]).any()
    assert _same(y_ours, y_theirs)
    g = torch.randn(y_theirs.shape).to(dtype).contiguous(memory_format=torch.channels_last)
    g[0, 0, 0, 0] = -0.0  # torch's gradient is 0 + g: +0
    g[-1, -1, -1, -1] = float("nan")
    y_ours.backward(g)
    y_theirs.backward(g)
    assert _same(ours.grad, theirs.grad)
    # an odd last row or column is outside every window: zero gradient, as torch's
    if shape[-1] % 2:
        assert not ours.grad[..., -1].any()
    if shape[-2] % 2:
        assert not ours.grad[..., -1, :].any()


@needs_compiler
def test_a_training_step_of_the_ex2_model_is_the_same_with_torch_s_pooling() -> None:
    config = TrainConfig(model="cnn_dropout", image_size=48)
    # layer by layer (not block.py's fused first block), so that the pooling layers are compared
    ours = nn.Sequential(*build_model(config, in_channels=1).to(memory_format=torch.channels_last))
    theirs = nn.Sequential(*build_model(config, in_channels=1).to(memory_format=torch.channels_last))
    for i, layer in enumerate(theirs):
        if isinstance(layer, MaxPool2d):
            assert layer.relu  # the model's Pool -> ReLU, fused
            theirs[i] = nn.Sequential(nn.MaxPool2d(2), nn.ReLU())
    x = torch.randn(8, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    for model in (ours, theirs):
        torch.manual_seed(1)  # the same dropout masks
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x).float().sum().backward()
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name


def test_other_poolings_and_layouts_are_nn_maxpool2d_s(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    original = pool._MaxPool2x2.apply

    def spy(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return original(x)

    monkeypatch.setattr(pool._MaxPool2x2, "apply", spy)
    nchw = torch.randn(2, 4, 8, 8)
    nhwc = nchw.contiguous(memory_format=torch.channels_last)
    cases = [(MaxPool2d(3), nhwc), (MaxPool2d(2, stride=1), nhwc), (MaxPool2d(2, padding=1), nhwc),
             (MaxPool2d(2, ceil_mode=True), nhwc), (MaxPool2d(2), nchw), (MaxPool2d(2), nhwc.double()),
             (MaxPool2d(2), nhwc[:, :, :, 1:])]  # a view, not contiguous
    for layer, x in cases:
        reference = nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding, ceil_mode=layer.ceil_mode)
        assert torch.equal(layer(x), reference(x))
        layer.relu = True
        assert torch.equal(layer(x), F.relu(reference(x)))
    assert calls == []
    assert repr(MaxPool2d(2)) == repr(nn.MaxPool2d(2)) and not list(MaxPool2d(2).state_dict())


def test_steadyval_native_0_turns_the_kernels_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADYVAL_NATIVE", "0")
    native.load.cache_clear()
    pool._functions.cache_clear()
    try:
        assert native.load("pool") is None
        assert not fast_path(torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last))
    finally:
        native.load.cache_clear()
        pool._functions.cache_clear()


@needs_compiler
def test_the_library_is_compiled_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADYVAL_CACHE", str(tmp_path))
    native.load.cache_clear()
    try:
        assert native.load("pool") is not None
        built = list((tmp_path / "native").iterdir())
        assert len(built) == 1 and built[0].suffix == ".so"  # no temporary file left behind
        stamp = built[0].stat().st_mtime_ns
        native.load.cache_clear()
        assert native.load("pool") is not None
        assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt
    finally:
        native.load.cache_clear()


def test_a_compiler_that_fails_gives_torch_s_ops_and_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\necho 'cc: error: no such target' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    monkeypatch.setenv("STEADYVAL_CACHE", str(tmp_path / "cache"))
    native.load.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert native.load("pool") is None
        assert any("using torch's ops" in str(w.message) and "no such target" in str(w.message) for w in caught)
        assert not list((tmp_path / "cache" / "native").glob("*"))  # nothing half-written kept
    finally:
        native.load.cache_clear()


SHARED_RUNTIME = """
import sys
from pathlib import Path
import torch
from steadyval.train import native

def runtimes():
    lines = Path("/proc/self/maps").read_text().splitlines()
    return sorted({l.split()[-1] for l in lines if any(n in l for n in ("libgomp", "libomp", "libiomp"))})

torch.ones(1000, 1000).sum()  # torch's OpenMP runtime is loaded and its threads started
before = runtimes()
assert native.load("pool") is not None
print(before, runtimes())
sys.exit(0 if not before else int(runtimes() != before))
"""


@needs_compiler
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_the_kernel_shares_torch_s_openmp_runtime() -> None:
    # in a fresh process, so that the library is loaded there for the first time
    done = subprocess.run([sys.executable, "-c", SHARED_RUNTIME], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr  # no second runtime, no second pool of threads
