"""Parse and validate a JMAP Request (RFC 8620 §3.3) and resolve result
references (§3.7).

``parse_request(body, ...)`` turns the bytes of a POST to the API endpoint
into a frozen ``Request`` or raises ``RequestError`` (notJSON, notRequest,
unknownCapability, limit). ``resolve_references(args, responses)`` replaces
``#name`` arguments with values taken from earlier responses, raising
``MethodError`` (invalidArguments, invalidResultReference).

Sans-I/O: must not import twisted, klein or the store.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import MethodError, RequestError
from .pointer import PointerError, evaluate


@dataclass(frozen=True, slots=True)
class Invocation:
    """One ``[name, arguments, methodCallId]`` tuple (RFC 8620 §3.2)."""

    name: str
    arguments: Mapping[str, Any]
    call_id: str

    def to_json(self) -> list[Any]:
        return [self.name, self.arguments, self.call_id]


@dataclass(frozen=True, slots=True)
class Request:
    using: frozenset[str]
    method_calls: tuple[Invocation, ...]
    created_ids: Mapping[str, str] | None  # None: not given (so not echoed)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate member name {key!r}")
        obj[key] = value
    return obj


# RFC 7493 §2.2: no number of greater magnitude than an IEEE 754 double (10**309 has
# 310 digits).  Python refuses to convert integer strings of over 4,300 digits anyway.
_MAX_INT_DIGITS = 309
# Only an escape can put a surrogate into a string: the body itself is strict UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _parse_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INT_DIGITS:
        raise ValueError(f"a number of {digits} digits is out of the I-JSON range (RFC 7493 §2.2)")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of the I-JSON range (RFC 7493 §2.2)")
    return value


def loads_ijson(body: bytes) -> Any:
    """Decode I-JSON (RFC 7493): UTF-8, no duplicate member names, no
    NaN/Infinity, no number beyond a double's range, no lone surrogate in a
    string (§2.1: an escaped surrogate not part of a pair).  Raises
    ``ValueError`` (incl. too-deep nesting)."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_reject_constant,
                          parse_int=_parse_int, parse_float=_parse_float)
        if _SURROGATE_ESCAPE.search(body) is not None:
            # Pairs were joined by the decoder; what is left cannot be UTF-8 encoded.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate (RFC 7493 §2.1)") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8: {e}") from None
    return data


def parse_request(
    body: bytes,
    *,
    capabilities: Collection[str],
    max_size_request: int,
    max_calls_in_request: int,
) -> Request:
    """Parse a request body. ``capabilities``: the server's capability URIs."""
    if len(body) > max_size_request:
        raise RequestError(
            "limit", 413, f"the request is larger than {max_size_request} octets", limit="maxSizeRequest"
        )
    try:
        data = loads_ijson(body)
    except ValueError as e:
        raise RequestError("notJSON", 400, f"the request did not parse as I-JSON: {e}") from None
    return parse_request_object(data, capabilities=capabilities, max_calls_in_request=max_calls_in_request)


def parse_request_object(
    data: Any,
    *,
    capabilities: Collection[str],
    max_calls_in_request: int,
) -> Request:
    """Validate an already decoded Request object (over a WebSocket, RFC 8887
    §4.3.2, its extra ``@type`` and ``id`` members are ignored here)."""
    if not isinstance(data, dict):
        raise RequestError("notRequest", 400, "the request is not a JSON object")

    using = data.get("using")
    if not isinstance(using, list) or not all(isinstance(u, str) for u in using):
        raise RequestError("notRequest", 400, "'using' must be an array of strings")
    calls = data.get("methodCalls")
    if not isinstance(calls, list):
        raise RequestError("notRequest", 400, "'methodCalls' must be an array")
    invocations = []
    for index, call in enumerate(calls):
        if (
            not isinstance(call, list)
            or len(call) != 3
            or not isinstance(call[0], str)
            or not isinstance(call[1], dict)
            or not isinstance(call[2], str)
        ):
            raise RequestError(
                "notRequest", 400, f"methodCalls[{index}] is not a [String, Object, String] Invocation"
            )
        invocations.append(Invocation(call[0], call[1], call[2]))
    created_ids = None
    if "createdIds" in data:
        created = data["createdIds"]
        if not isinstance(created, dict) or not all(isinstance(v, str) for v in created.values()):
            raise RequestError("notRequest", 400, "'createdIds' must be an object of Id to Id")
        created_ids = dict(created)

    unknown = [u for u in using if u not in capabilities]
    if unknown:
        raise RequestError(
            "unknownCapability",
            400,
            f"the request used capability {unknown[0]!r}, which is not supported by this server",
        )
    if len(invocations) > max_calls_in_request:
        raise RequestError(
            "limit",
            400,
            f"the request has {len(invocations)} method calls; the limit is {max_calls_in_request}",
            limit="maxCallsInRequest",
        )
    return Request(frozenset(using), tuple(invocations), created_ids)


def resolve_references(args: Mapping[str, Any], responses: Sequence[Invocation]) -> dict[str, Any]:
    """Resolve ``#name`` result references (RFC 8620 §3.7) against the
    responses of earlier calls; returns the arguments with plain names."""
    resolved: dict[str, Any] = {}
    for key, value in args.items():
        if not key.startswith("#"):
            resolved[key] = value
            continue
        name = key[1:]
        if name in args:
            raise MethodError("invalidArguments", f"argument {name!r} given both as {name!r} and {key!r}")
        resolved[name] = _resolve_one(key, value, responses)
    return resolved


def _resolve_one(key: str, ref: Any, responses: Sequence[Invocation]) -> Any:
    if not (
        isinstance(ref, dict)
        and isinstance(ref.get("resultOf"), str)
        and isinstance(ref.get("name"), str)
        and isinstance(ref.get("path"), str)
    ):
        raise MethodError(
            "invalidResultReference", f"{key!r} is not a ResultReference {{resultOf, name, path}}"
        )
    for response in responses:
        if response.call_id == ref["resultOf"]:
            break
    else:
        raise MethodError("invalidResultReference", f"{key!r}: no earlier response to call {ref['resultOf']!r}")
    if response.name != ref["name"]:
        raise MethodError(
            "invalidResultReference",
            f"{key!r}: response to {ref['resultOf']!r} is {response.name!r}, not {ref['name']!r}",
        )
    try:
        return copy.deepcopy(evaluate(response.arguments, ref["path"]))
    except PointerError as e:
        raise MethodError("invalidResultReference", f"{key!r}: {e}") from None
