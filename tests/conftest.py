"""Shared fixtures: synthetic datasets with one planted fault each, audited once per session."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from steadyval.audit import AuditResult, audit
from steadyval.findings import Finding, Severity
from steadyval.synthetic import Synthetic, SyntheticSpec, generate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's ~/.cache from tests.
    monkeypatch.setenv("STEADYVAL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def make_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Synthetic]:
    """Generate (once per session and spec) a synthetic dataset; returns the Synthetic."""
    made: dict[str, Synthetic] = {}

    def make(layout: str = "manifest", **fields: object) -> Synthetic:
        key = f"{layout}:{sorted(fields.items())!r}"
        if key not in made:
            out = tmp_path_factory.mktemp("synthetic")
            made[key] = generate(SyntheticSpec(**fields), out, layout=layout)  # type: ignore[arg-type]
        return made[key]

    return make


@pytest.fixture(scope="session")
def audited(make_synthetic: Callable[..., Synthetic],
            tmp_path_factory: pytest.TempPathFactory) -> Callable[..., AuditResult]:
    """Audit a synthetic dataset built from ``fields`` (cached per session)."""
    results: dict[str, AuditResult] = {}
    cache = tmp_path_factory.mktemp("audit-cache")

    def run(**fields: object) -> AuditResult:
        key = repr(sorted(fields.items()))
        if key not in results:
            results[key] = audit(make_synthetic(**fields).path, cache_dir=cache)
        return results[key]

    return run


def findings_of(result: AuditResult, finding_id: str, at_least: Severity = Severity.LOW) -> list[Finding]:
    """The findings with ``finding_id`` at ``at_least`` severity or more."""
    return [f for f in result.findings if f.id == finding_id and f.severity.at_least(at_least)]


def no_high(result: AuditResult) -> list[str]:
    """Ids of high findings (an empty list is what a clean twin must give)."""
    return [f.id for f in result.findings if f.severity == Severity.HIGH]


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"../shared/data/{name} is not beside this checkout (CI has it; clones may not)")
    return path


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with size and mtime: to prove nothing was written there."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.stat(os.path.join(dirpath, f))
            out[os.path.relpath(os.path.join(dirpath, f), root)] = (st.st_size, st.st_mtime_ns)
    return out


def at_thread_counts(run: Callable[[], object], counts: tuple[int, ...] = (1, 2)) -> list:
    """``run()``'s result with torch using each of ``counts`` threads; the thread count is restored."""
    import torch

    before = torch.get_num_threads()
    results = []
    try:
        for threads in counts:
            torch.set_num_threads(threads)
            results.append(run())
    finally:
        torch.set_num_threads(before)
    return results
