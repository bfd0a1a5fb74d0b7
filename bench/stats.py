"""Summaries of repeated measurements, ratios ours/theirs, and the targets bootstrap is held to."""

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Summary":
        if not values:
            raise ValueError("no values to summarize")
        return cls(round(statistics.median(values), 3), min(values), max(values), len(values))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is missing or theirs is zero."""
    if ours is None or not theirs:
        return None
    return round(ours / theirs, 3)


@dataclass(frozen=True)
class Target:
    """A goal: `measured` must be at most `limit`. A miss is reported, never fatal."""

    name: str
    measured: float | None
    limit: float
    unit: str = ""

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "N/A"
        return "PASS" if self.measured <= self.limit else "MISS"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}
