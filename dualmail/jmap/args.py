"""Typed reading of method arguments (RFC 8620 §1.2-§1.4, §3.5).

``ArgReader(args)`` takes each argument by name and JMAP type, applying the
default when it is omitted, and ``finish()`` rejects whatever is left. Every
failure is ``MethodError("invalidArguments")`` with a description naming the
argument.

Must not import twisted, klein or the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import MethodError

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,255}\Z")
MAX_INT = 2**53 - 1

_MISSING: Any = object()


def is_id(value: object) -> bool:
    """An ``Id`` (RFC 8620 §1.2): 1-255 chars of ``[A-Za-z0-9_-]``."""
    return isinstance(value, str) and ID_RE.match(value) is not None


def is_int(value: object) -> bool:
    """An ``Int`` (RFC 8620 §1.3): integer in -2^53+1 .. 2^53-1."""
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_INT <= value <= MAX_INT


def _invalid(name: str, what: str) -> MethodError:
    return MethodError("invalidArguments", f"argument {name!r} {what}")


class ArgReader:
    """Consume a method's arguments one by one; ``finish()`` rejects unknown
    ones. A ``null`` value counts as omitted only where ``nullable``."""

    def __init__(self, args: Mapping[str, Any]):
        self._args = dict(args)

    def _take(self, name: str, default: Any, nullable: bool) -> Any:
        if name not in self._args:
            if default is _MISSING:
                raise _invalid(name, "is required")
            return default
        value = self._args.pop(name)
        if value is None:
            if nullable:
                return None
            raise _invalid(name, "must not be null")
        return value

    def any(self, name: str, default: Any = _MISSING, nullable: bool = False) -> Any:
        return self._take(name, default, nullable)

    def id(self, name: str, default: Any = _MISSING, nullable: bool = False) -> Any:
        value = self._take(name, default, nullable)
        if value is not None and value is not default and not is_id(value):
            raise _invalid(name, "must be an Id")
        return value

    def string(self, name: str, default: Any = _MISSING, nullable: bool = False) -> Any:
        value = self._take(name, default, nullable)
        if value is not None and value is not default and not isinstance(value, str):
            raise _invalid(name, "must be a String")
        return value

    def boolean(self, name: str, default: Any = _MISSING, nullable: bool = False) -> Any:
        value = self._take(name, default, nullable)
        if value is not None and value is not default and not isinstance(value, bool):
            raise _invalid(name, "must be a Boolean")
        return value

    def int(self, name: str, default: Any = _MISSING, nullable: bool = False) -> Any:
        value = self._take(name, default, nullable)
        if value is not None and value is not default and not is_int(value):
            raise _invalid(name, "must be an Int")
        return value

    def unsigned(self, name: str, default: Any = _MISSING, nullable: bool = False, positive: bool = False) -> Any:
        value = self._take(name, default, nullable)
        if value is not None and value is not default:
            if not is_int(value) or value < 0:
                raise _invalid(name, "must be an UnsignedInt")
            if positive and value == 0:
                raise _invalid(name, "must be greater than 0")
        return value

    def id_list(self, name: str, default: Any = _MISSING, nullable: bool = False, refs: bool = False) -> Any:
        """``Id[]``; with ``refs``, ``#creationId`` items are allowed too."""
        value = self._take(name, default, nullable)
        if value is not None and value is not default:
            if not isinstance(value, list) or not all(
                is_id(v) or (refs and isinstance(v, str) and v.startswith("#") and is_id(v[1:])) for v in value
            ):
                raise _invalid(name, "must be an array of Ids")
        return value

    def string_list(self, name: str, default: Any = _MISSING, nullable: bool = False) -> Any:
        value = self._take(name, default, nullable)
        if value is not None and value is not default:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _invalid(name, "must be an array of Strings")
        return value

    def object(self, name: str, default: Any = _MISSING, nullable: bool = False) -> Any:
        value = self._take(name, default, nullable)
        if value is not None and value is not default and not isinstance(value, dict):
            raise _invalid(name, "must be an object")
        return value

    def rest(self) -> dict[str, Any]:
        """The arguments not consumed yet (e.g. type-specific ones)."""
        return dict(self._args)

    def finish(self) -> None:
        if self._args:
            name = sorted(self._args)[0]
            raise MethodError("invalidArguments", f"unknown argument {name!r}")
