"""The one conversion between modseqs and JMAP state strings (CONTRACT §4).

A state string is the decimal modseq of the last transaction that changed an
object of the type, e.g. ``"4512"``. When /changes has to page *inside* one
transaction (it changed more objects than ``maxChanges``), the intermediate
``newState`` carries a position inside that transaction: ``"4512.37"`` means
"everything up to modseq 4511, plus the changes of modseq 4512 up to and
including object number 37" (the store orders the changes of one transaction
by object number; ``ReadView.changes(kind, since, limit, after=)`` takes and
returns exactly this pair as integers). States from /get, /set and push are
always plain decimal. This module is the only place state strings are made
or parsed; the store speaks integers.

Must not import twisted, klein or the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import MethodError

MAX_MODSEQ = 2**53 - 1  # JavaScript clients read integers below 2^53 exactly

_STATE = re.compile(r"(0|[1-9][0-9]{0,15})(?:\.([1-9][0-9]{0,15}))?\Z")


@dataclass(frozen=True, slots=True, order=True)
class StatePosition:
    """A point in an account's change history: all of ``modseq - 1`` plus the
    changes of ``modseq`` to objects numbered up to ``offset`` (``offset ==
    0``: all of ``modseq``)."""

    modseq: int
    offset: int = 0


def to_state(modseq: int | StatePosition) -> str:
    """Render a modseq (or an intermediate position) as a state string."""
    if isinstance(modseq, StatePosition):
        if modseq.offset:
            return f"{to_state(modseq.modseq)}.{modseq.offset}"
        modseq = modseq.modseq
    if isinstance(modseq, bool) or not isinstance(modseq, int) or not 0 <= modseq <= MAX_MODSEQ:
        raise ValueError(f"modseq out of range: {modseq!r}")
    return str(modseq)


def parse_position(state: object, error: str = "cannotCalculateChanges") -> StatePosition:
    """Parse any state string we issue (plain or intermediate).

    Junk raises ``MethodError(error)``: callers pass ``"cannotCalculateChanges"``
    for /changes and /queryChanges, ``"stateMismatch"`` for ifInState.
    """
    if not isinstance(state, str):
        raise MethodError(error, f"not a state string: {state!r}")
    match = _STATE.match(state)
    if match is None:
        raise MethodError(error, f"unknown state {state!r}")
    modseq = int(match.group(1))
    offset = int(match.group(2) or 0)
    if modseq > MAX_MODSEQ:
        raise MethodError(error, f"unknown state {state!r}")
    return StatePosition(modseq, offset)


def parse_state(state: object, error: str = "cannotCalculateChanges") -> int:
    """Parse a plain decimal state string to its modseq; junk (and
    intermediate states) raise ``MethodError(error)``."""
    position = parse_position(state, error)
    if position.offset:
        raise MethodError(error, f"not a plain state: {state!r}")
    return position.modseq
