"""A small synthetic dataset for the trial tests (32 px, a few hundred images)."""

from __future__ import annotations

import pytest

from steadyval.data import load_dataset
from steadyval.synthetic import DISTINCT_SITES


@pytest.fixture(scope="module")
def small(make_synthetic):
    return load_dataset(make_synthetic(n_train=200, n_val=60, image_size=32, sites=DISTINCT_SITES,
                                       images_per_patient=2, seed=3).path, image_size=32)
