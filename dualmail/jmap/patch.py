"""PatchObject application (RFC 8620 §5.3 "update").

``apply_patch(obj, patch)`` returns a patched deep copy of ``obj`` or raises
``SetError``:

- ``invalidPatch`` when a key is not a valid path (bad ``~`` escape), reaches
  inside an array, has a missing or non-object parent, or when one key is a
  prefix of another (``"alerts/1/offset"`` and ``"alerts"``);
- ``invalidProperties`` (listing *all* offending top-level properties) when
  a top-level property is unknown, or a server-set/immutable property would
  change value.

Keys are JSON Pointers with an implicit leading ``/``. A ``null`` value resets
a top-level property to its default when the type defines one, otherwise
removes the member (a no-op if absent). The patch is validated completely
before anything is applied, so the result is all-or-nothing.

Pure functions: must not import twisted, klein or the store.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from .errors import SetError
from .pointer import PointerError, unescape


def parse_path(key: str) -> list[str]:
    """Tokens of a patch key (implicit leading ``/``); ``SetError
    invalidPatch`` if an escape is bad."""
    if not isinstance(key, str):
        raise SetError("invalidPatch", f"patch key {key!r} is not a string")
    try:
        return [unescape(token) for token in key.split("/")]
    except PointerError as e:
        raise SetError("invalidPatch", str(e)) from None


def apply_patch(
    obj: Mapping[str, Any],
    patch: Mapping[str, Any],
    *,
    known: Collection[str] | None = None,
    immutable: Collection[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply ``patch`` to a copy of ``obj`` (RFC 8620 §5.3).

    ``known``: the type's property names (None: anything goes);
    ``immutable``: properties a client may include only with their current
    value (server-set ones such as ``id``); ``defaults``: per-property default
    used when a top-level property is patched to ``null``.
    """
    if not isinstance(patch, Mapping):
        raise SetError("invalidPatch", "a PatchObject must be a JSON object")
    paths = [(key, parse_path(key)) for key in patch]

    ordered = sorted(paths, key=lambda kp: kp[1])
    for (key_a, a), (key_b, b) in zip(ordered, ordered[1:]):
        if b[: len(a)] == a:
            raise SetError("invalidPatch", f"patch key {key_a!r} is a prefix of {key_b!r}")

    invalid: list[str] = []
    for key, tokens in paths:
        top = tokens[0]
        if known is not None and top not in known:
            invalid.append(top)
        elif top in immutable:
            if _lookup(obj, tokens) != (patch[key], True):
                invalid.append(top)
    if invalid:
        names = sorted(set(invalid))
        raise SetError(
            "invalidProperties",
            "cannot set " + ", ".join(names),
            properties=names,
        )

    result = copy.deepcopy(dict(obj))
    for key, tokens in paths:
        parent: Any = result
        for depth, token in enumerate(tokens[:-1]):
            if isinstance(parent, list):
                raise SetError("invalidPatch", f"{key!r} points inside an array")
            if not isinstance(parent, dict) or token not in parent:
                raise SetError("invalidPatch", f"{key!r}: {'/'.join(tokens[: depth + 1])!r} does not exist")
            parent = parent[token]
        last = tokens[-1]
        if isinstance(parent, list):
            raise SetError("invalidPatch", f"{key!r} points inside an array")
        if not isinstance(parent, dict):
            raise SetError("invalidPatch", f"{key!r}: parent is not an object")
        value = patch[key]
        if value is None:
            if len(tokens) == 1 and defaults is not None and last in defaults:
                parent[last] = copy.deepcopy(defaults[last])
            else:
                parent.pop(last, None)
        else:
            parent[last] = copy.deepcopy(value)
    return result


def _lookup(obj: Any, tokens: list[str]) -> tuple[Any, bool]:
    """(value, found) at ``tokens`` inside nested objects."""
    for token in tokens:
        if not isinstance(obj, Mapping) or token not in obj:
            return None, False
        obj = obj[token]
    return obj, True
