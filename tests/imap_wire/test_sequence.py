"""SequenceSet / ResolvedSet (RFC 9051 §9 sequence-set, RFC 5182 "$")."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualmail.imap.wire.sequence import ResolvedSet, SeqRange, SequenceSet

numbers = st.integers(min_value=1, max_value=2**32 - 1)
small = st.integers(min_value=1, max_value=60)
seq_number = st.one_of(numbers, st.just("*"))
items = st.one_of(
    st.builds(lambda a, b: SeqRange(a, b), seq_number, seq_number),
    st.just("$"),
)
sequence_sets = st.lists(items, min_size=1, max_size=12).map(lambda xs: SequenceSet(tuple(xs)))


@given(sequence_sets)
def test_format_parse_roundtrip(s: SequenceSet) -> None:
    assert SequenceSet.parse(s.format()) == s


@pytest.mark.parametrize(
    "text", ["", ",", "0", "1:", ":1", "1,,2", "1:2:3", "01", "$:1", "4294967296", "a", "1 2", "*:"]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        SequenceSet.parse(text)


def naive(s: SequenceSet, max_value: int, saved: set[int]) -> set[int]:
    out: set[int] = set()
    for item in s.items:
        if item == "$":
            out |= saved
            continue
        a = max_value if item.start == "*" else item.start
        b = max_value if item.end == "*" else item.end
        out |= {n for n in range(min(a, b), max(a, b) + 1) if 1 <= n <= max_value}
    return out


small_sets = st.lists(
    st.one_of(st.builds(SeqRange, st.one_of(small, st.just("*")), st.one_of(small, st.just("*"))), st.just("$")),
    min_size=1,
    max_size=6,
).map(lambda xs: SequenceSet(tuple(xs)))


@given(small_sets, st.integers(min_value=0, max_value=50), st.sets(small, max_size=8))
def test_resolve_matches_naive(s: SequenceSet, max_value: int, saved: set[int]) -> None:
    resolved = s.resolve(max_value, ResolvedSet.from_ints(saved))
    # "$" is substituted as saved; everything else is clipped to 1..max_value
    expected = naive(s, max_value, saved)
    assert set(resolved) == expected
    assert list(resolved) == sorted(expected)
    assert len(resolved) == len(expected)
    for n in range(0, 70):
        assert (n in resolved) == (n in expected)


@given(st.sets(st.integers(min_value=1, max_value=500)))
def test_resolved_from_ints(values: set[int]) -> None:
    r = ResolvedSet.from_ints(values)
    assert list(r) == sorted(values)
    assert list(reversed(r)) == sorted(values, reverse=True)
    assert r.min == (min(values) if values else None)
    assert r.max == (max(values) if values else None)
    if values:
        assert SequenceSet.parse(r.format()).resolve(500) == r
    # ranges are disjoint and non-adjacent
    for (_, hi), (lo, _) in zip(r.ranges, r.ranges[1:]):
        assert lo > hi + 1


def test_examples() -> None:
    s = SequenceSet.parse("2,4:7,9,12:*")
    assert s.resolve(15).ranges == ((2, 2), (4, 7), (9, 9), (12, 15))
    assert SequenceSet.parse("*:4").resolve(10).ranges == ((4, 10),)
    # RFC 9051 §6.4.8: 559:* includes the last UID even if it is lower
    assert SequenceSet.parse("559:*").resolve(300).ranges == ((300, 300),)
    assert SequenceSet.parse("1:*").resolve(0).ranges == ()
    assert SequenceSet.parse("5:7").resolve(6, clip=False).ranges == ((5, 7),)
    assert SequenceSet.parse("$").resolve(10).ranges == ()  # RFC 5182: no saved result
    assert SequenceSet.parse("$,1").uses_saved and not SequenceSet.parse("1").uses_saved
    assert SequenceSet.parse("1:*").uses_star
    assert str(SequenceSet.of(1, (3, 5), "*", "$")) == "1,3:5,*,$"


def test_large_star_range_is_cheap() -> None:
    start = time.perf_counter()
    r = SequenceSet.parse("1:*").resolve(100_000)
    assert r.ranges == ((1, 100_000),)
    assert len(r) == 100_000 and 99_999 in r and 100_001 not in r
    big = SequenceSet.parse("1:*").resolve(2**32 - 1)
    assert len(big) == 2**32 - 1 and 2**31 in big
    assert time.perf_counter() - start < 0.1
    assert sum(1 for _ in r) == 100_000
