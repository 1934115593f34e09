"""JSON Pointer evaluation (RFC 6901) with the JMAP ``*`` extension
(RFC 8620 §3.7).

``*`` applied to an array maps the rest of the pointer over every item and
returns the results in order; a result that is itself an array is spliced in
(an array of arrays is flattened one level).

Errors raise ``PointerError`` (a ``ValueError``); the dispatcher turns it into
``invalidResultReference``. Pure functions: must not import twisted, klein or
the store.
"""

from __future__ import annotations

import re
from typing import Any

_INDEX = re.compile(r"(0|[1-9][0-9]*)\Z")


class PointerError(ValueError):
    """The pointer is malformed or does not resolve against the document."""


def unescape(token: str) -> str:
    """Decode one reference token: ``~1`` -> ``/`` then ``~0`` -> ``~``
    (RFC 6901 §4: this order, so ``~01`` is ``~1``). A ``~`` followed by
    anything else is an error."""
    if "~" not in token:
        return token
    if re.search(r"~(?![01])", token):
        raise PointerError(f"bad escape in reference token {token!r}")
    return token.replace("~1", "/").replace("~0", "~")


def escape(token: str) -> str:
    """Encode one reference token (inverse of ``unescape``)."""
    return token.replace("~", "~0").replace("/", "~1")


def parse(pointer: str) -> list[str]:
    """Split a pointer into unescaped reference tokens. ``""`` is the whole
    document; anything else must start with ``/``."""
    if not isinstance(pointer, str):
        raise PointerError(f"pointer must be a string, not {type(pointer).__name__}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError(f"pointer {pointer!r} does not start with '/'")
    return [unescape(token) for token in pointer[1:].split("/")]


def evaluate(document: Any, pointer: str, *, wildcard: bool = True) -> Any:
    """Return the value ``pointer`` references in ``document``.

    With ``wildcard`` (the default) a ``*`` token on an array maps over it as
    RFC 8620 §3.7 describes; without it ``*`` is an ordinary (invalid) array
    index, as in plain RFC 6901.
    """
    return _evaluate(document, parse(pointer), pointer, wildcard)


def _evaluate(value: Any, tokens: list[str], pointer: str, wildcard: bool) -> Any:
    for position, token in enumerate(tokens):
        if isinstance(value, dict):
            if token not in value:
                raise PointerError(f"{pointer!r}: no member {token!r}")
            value = value[token]
        elif isinstance(value, list):
            if wildcard and token == "*":
                rest = tokens[position + 1 :]
                mapped: list[Any] = []
                for item in value:
                    result = _evaluate(item, rest, pointer, wildcard)
                    if isinstance(result, list):
                        mapped.extend(result)
                    else:
                        mapped.append(result)
                return mapped
            if not _INDEX.match(token):
                raise PointerError(f"{pointer!r}: {token!r} is not an array index")
            index = int(token)
            if index >= len(value):
                raise PointerError(f"{pointer!r}: index {index} out of range")
            value = value[index]
        else:
            raise PointerError(f"{pointer!r}: cannot descend into {type(value).__name__} with {token!r}")
    return value
