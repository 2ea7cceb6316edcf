"""Which benchmark cases a kernel can run: one rule for the bench and its smoke test."""

from __future__ import annotations

from harness import bench


def case(needs: str) -> bench.Case:
    return bench.Case("x", "pairs", {}, "ns", needs=needs)


def test_exact_cases_run_with_either_method() -> None:
    assert bench.lacks(case("exact"), {"flag": True, "prctl": False}) is None
    assert bench.lacks(case("exact"), {"flag": False, "prctl": True}) is None
    assert bench.lacks(case("exact"), {"flag": False, "prctl": False}) is not None


def test_a_named_method_needs_that_method() -> None:
    assert bench.lacks(case("flag"), {"flag": True}) is None
    assert bench.lacks(case("prctl"), {"flag": True, "prctl": False}) is not None
    assert bench.lacks(case(""), {}) is None
