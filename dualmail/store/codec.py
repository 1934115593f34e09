"""Value encoding of stored records: compact JSON, UTF-8.

JSON keeps the store inspectable with any LMDB tool and is fast enough through the C
accelerator.  Imports nothing from twisted or lmdb.
"""

from __future__ import annotations

import json
from typing import Any

_enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_dec = json.JSONDecoder()


def dumps(obj: Any) -> bytes:
    return _enc.encode(obj).encode("utf-8", "surrogatepass")


def loads(data: bytes) -> Any:
    return _dec.decode(bytes(data).decode("utf-8", "surrogatepass"))
