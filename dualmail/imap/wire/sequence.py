"""IMAP sequence sets (RFC 9051 §9 ``sequence-set``, RFC 5182 ``$``) as values.

One job: parse, format and resolve message-number / UID sets without ever
materialising them as lists, so ``1:*`` over 100k messages stays a single range.
Imports nothing outside the standard library.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Final, Iterable, Iterator, Literal, Union

STAR: Final = "*"
SAVED: Final = "$"
MAX_NUMBER: Final = 2**32 - 1  # nz-number is a 32-bit unsigned value

SeqNumber = Union[int, Literal["*"]]

_TOKEN = re.compile(r"(?:\*|[1-9][0-9]{0,9})(?::(?:\*|[1-9][0-9]{0,9}))?|\$")


@dataclass(frozen=True, slots=True)
class SeqRange:
    """``start[:end]`` as written by the client; ``"*"`` stays symbolic."""

    start: SeqNumber
    end: SeqNumber

    def format(self) -> str:
        if self.start == self.end:
            return str(self.start)
        return f"{self.start}:{self.end}"


SeqItem = Union[SeqRange, Literal["$"]]


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """An unresolved sequence set, kept in wire order (so it formats back as sent)."""

    items: tuple[SeqItem, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("empty sequence set")

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        """Parse ``sequence-set``; raises ValueError on anything else."""
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("ascii")
            except UnicodeDecodeError:
                raise ValueError("sequence set is not ASCII") from None
        if not text:
            raise ValueError("empty sequence set")
        items: list[SeqItem] = []
        for part in text.split(","):
            if not _TOKEN.fullmatch(part):
                raise ValueError(f"bad sequence set element {part!r}")
            if part == SAVED:
                items.append(SAVED)
                continue
            a, _, b = part.partition(":")
            start = _number(a)
            items.append(SeqRange(start, _number(b) if b else start))
        return cls(tuple(items))

    @classmethod
    def of(cls, *items: int | tuple[int, int] | str) -> SequenceSet:
        """Build from ints, ``(lo, hi)`` pairs, ``"*"`` or ``"$"``; handy in tests."""
        out: list[SeqItem] = []
        for item in items:
            if item == SAVED:
                out.append(SAVED)
            elif isinstance(item, tuple):
                out.append(SeqRange(_check(item[0]), _check(item[1])))
            else:
                n = _check(item)
                out.append(SeqRange(n, n))
        return cls(tuple(out))

    def format(self) -> str:
        return ",".join(SAVED if i == SAVED else i.format() for i in self.items)

    __str__ = format

    @property
    def uses_saved(self) -> bool:
        return SAVED in self.items

    @property
    def uses_star(self) -> bool:
        return any(i != SAVED and STAR in (i.start, i.end) for i in self.items)

    def resolve(
        self, max_value: int, saved: ResolvedSet | None = None, *, clip: bool = True
    ) -> ResolvedSet:
        """Substitute ``*`` by ``max_value`` and ``$`` by ``saved``.

        Ranges are normalised (``4:2`` is ``2:4``, RFC 9051 §9) and merged.  With
        ``clip`` (the default) numbers above ``max_value`` are dropped, which is what
        UID sets want: ``UID 559:*`` always includes the last UID (RFC 9051 §6.4.8).
        A ``$`` without a saved result is the empty set (RFC 5182 §2.1).
        """
        pairs: list[tuple[int, int]] = []
        for item in self.items:
            if item == SAVED:
                if saved is not None:
                    pairs.extend(saved.ranges)
                continue
            assert isinstance(item, SeqRange)
            a = max_value if item.start == STAR else item.start
            b = max_value if item.end == STAR else item.end
            assert isinstance(a, int) and isinstance(b, int)
            lo, hi = (a, b) if a <= b else (b, a)
            if clip:
                hi = min(hi, max_value)
                lo = max(lo, 1)
            if lo <= hi:
                pairs.append((lo, hi))
        return ResolvedSet.from_ranges(pairs)


@dataclass(frozen=True, slots=True)
class ResolvedSet:
    """Concrete numbers as sorted, disjoint, non-adjacent inclusive ranges."""

    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_ranges(cls, pairs: Iterable[tuple[int, int]]) -> ResolvedSet:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted((min(p), max(p)) for p in pairs):
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return cls(tuple(merged))

    @classmethod
    def from_ints(cls, numbers: Iterable[int]) -> ResolvedSet:
        merged: list[tuple[int, int]] = []
        for n in sorted(set(numbers)):
            if merged and n == merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], n)
            else:
                merged.append((n, n))
        return cls(tuple(merged))

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __reversed__(self) -> Iterator[int]:
        for lo, hi in reversed(self.ranges):
            yield from range(hi, lo - 1, -1)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __contains__(self, n: object) -> bool:
        if not isinstance(n, int):
            return False
        i = bisect.bisect_right(self.ranges, n, key=lambda r: r[0])
        return i > 0 and n <= self.ranges[i - 1][1]

    @property
    def min(self) -> int | None:
        return self.ranges[0][0] if self.ranges else None

    @property
    def max(self) -> int | None:
        return self.ranges[-1][1] if self.ranges else None

    def to_sequence_set(self) -> SequenceSet:
        if not self.ranges:
            raise ValueError("cannot express an empty set as a sequence-set")
        return SequenceSet(tuple(SeqRange(lo, hi) for lo, hi in self.ranges))

    def format(self) -> str:
        """Compact wire form (``1:3,7``); empty string for the empty set."""
        return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in self.ranges)

    __str__ = format


def _number(text: str) -> SeqNumber:
    if text == STAR:
        return STAR
    n = int(text)
    if n > MAX_NUMBER:
        raise ValueError(f"sequence number {n} out of range")
    return n


def _check(n: int | str) -> SeqNumber:
    if n == STAR:
        return STAR
    if not isinstance(n, int) or not 1 <= n <= MAX_NUMBER:
        raise ValueError(f"bad sequence number {n!r}")
    return n
