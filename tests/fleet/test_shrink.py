"""The fleet test's shrinker and walk generator, without a server."""

from __future__ import annotations

import pytest_twisted

from tests.fleet.fleet import OPS, WEIGHTS, shrink, walk


@pytest_twisted.ensureDeferred
async def test_shrink_finds_the_two_operations_that_matter():
    ops = [(f"op{i}", i) for i in range(40)]
    calls = []

    async def fails(candidate):
        calls.append(candidate)
        return ("op7", 7) in candidate and ("op31", 31) in candidate

    assert await shrink(ops, fails) == [("op7", 7), ("op31", 31)]
    assert len(calls) <= 40


@pytest_twisted.ensureDeferred
async def test_shrink_stops_at_its_budget():
    async def fails(candidate):
        return True

    got = await shrink([("x", i) for i in range(100)], fails, budget=3)
    assert 0 < len(got) < 100


def test_walk_is_seeded_and_covers_every_operation():
    assert walk(5, 30) == walk(5, 30) != walk(6, 30)
    assert len(OPS) == len(WEIGHTS)
    assert {k for s in range(20) for k, _ in walk(s, 50)} == set(OPS)
