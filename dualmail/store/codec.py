"""Value encoding of stored records: compact JSON, UTF-8.

JSON keeps the store inspectable with any LMDB tool.  ``orjson`` writes and reads it
several times faster than the standard library (records are encoded on every write and
decoded on every FETCH or Email/get); the standard library remains the definition and
takes over for what orjson does not do the same way: lone surrogates (names kept with
``surrogateescape``), integers beyond 64 bits, non-string keys, and — when reading —
any number of 19 or more digits (orjson would turn one beyond 64 bits into a float).
Imports nothing from twisted or lmdb.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_dec = json.JSONDecoder()
# digits -> "0", everything else -> " ": a run of 19 digits is then a plain substring test
# (several times faster than the regular expression on a typical record)
_DIGITS_ONLY = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _enc.encode(obj).encode("utf-8", "surrogatepass")


def loads_small_ints(data: bytes) -> Any:
    """``loads`` for a value whose numbers are all small (below 2**53; e.g. none at all):
    orjson straight away, without looking for long digit runs."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return loads(data)


def loads(data: bytes) -> Any:
    raw = bytes(data)
    if _LONG_RUN not in raw.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _dec.decode(raw.decode("utf-8", "surrogatepass"))
