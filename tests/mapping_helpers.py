"""The tasks the mapping tests map, chain and reduce with (engine, results and Dask tests)."""

from __future__ import annotations

from nbflow import task


@task
def scale(x: int, factor: int) -> int:
    """One child's work: ``x`` times ``factor``."""
    return x * factor


@task
def total(xs: list[int]) -> int:
    """The reduce after a map: the children's results summed."""
    return sum(xs)


@task
def parse(text: str) -> int:
    """A child that fails on text that is not a number."""
    return int(text)


@task
def double(n: int) -> int:
    """A map over a mapped task's children."""
    return 2 * n
