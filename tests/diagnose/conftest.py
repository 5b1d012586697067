"""A small synthetic dataset shared by the probe tests."""

from __future__ import annotations

import pytest

from steadyval.data import load_dataset


@pytest.fixture(scope="module")
def tiny(make_synthetic):
    return load_dataset(make_synthetic(n_train=240, n_val=60, image_size=32).path, image_size=32)
