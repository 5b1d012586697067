"""Progress bars on stderr (rich), silent when disabled, so library calls stay quiet by default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Advance(Protocol):
    def __call__(self, n: int = 1, description: str | None = None) -> None: ...


@contextmanager
def progress_bar(total: int, description: str, enabled: bool) -> Iterator[Advance]:
    """Yield ``advance(n)``; draws a rich bar on stderr when ``enabled``."""
    if not enabled or total <= 0:
        yield lambda n=1, description=None: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None) -> None:
            bar.update(task, advance=n, **({"description": description} if description else {}))

        yield advance
