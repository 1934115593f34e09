"""The three tiers of JMAP errors (RFC 8620 §3.6, §5.3) as Python exceptions.

- ``RequestError``: the request as a whole is rejected before any method runs;
  rendered as an RFC 7807 ``application/problem+json`` body.
- ``MethodError``: one method call fails; rendered as ``["error", {...}, id]``.
- ``SetError``: one object in a /set or /copy fails; a value collected into
  ``notCreated`` / ``notUpdated`` / ``notDestroyed``.

Plus ``CannotCalculateChanges``, which a data type raises when its change log
no longer reaches the client's state.

Pure values: must not import twisted, klein, the store or any other dualmail
module.
"""

from __future__ import annotations

from typing import Any

ERROR_NS = "urn:ietf:params:jmap:error:"

REQUEST_ERROR_TYPES = frozenset({"notJSON", "notRequest", "unknownCapability", "limit"})

METHOD_ERROR_TYPES = frozenset(
    {
        "unknownMethod",
        "invalidArguments",
        "invalidResultReference",
        "forbidden",
        "accountNotFound",
        "accountNotSupportedByMethod",
        "accountReadOnly",
        "serverFail",
        "serverUnavailable",
        "serverPartialFail",
        "stateMismatch",
        "cannotCalculateChanges",
        "requestTooLarge",
        "anchorNotFound",
        "unsupportedFilter",
        "unsupportedSort",
        "tooManyChanges",
        "fromAccountNotFound",
        "fromAccountNotSupportedByMethod",
    }
)


class RequestError(Exception):
    """A request-level error (RFC 8620 §3.6.1), rendered per RFC 7807.

    ``type`` is either a short JMAP name (``"notJSON"``, ``"limit"``, ...),
    which is expanded to ``urn:ietf:params:jmap:error:<name>``, or a full URI
    (anything containing ``":"``, e.g. ``"about:blank"``). ``limit`` names the
    limit that was applied and is required for the ``limit`` type.
    """

    def __init__(self, type: str, status: int, detail: str, limit: str | None = None):
        super().__init__(detail)
        self.type = type if ":" in type else ERROR_NS + type
        self.status = status
        self.detail = detail
        self.limit = limit
        if self.type == ERROR_NS + "limit" and not limit:
            raise ValueError("a limit RequestError needs the name of the limit")

    def to_problem(self) -> dict[str, Any]:
        """The problem details object (RFC 7807 §3.1)."""
        problem: dict[str, Any] = {"type": self.type, "status": self.status, "detail": self.detail}
        if self.limit is not None:
            problem["limit"] = self.limit
        return problem

    def __repr__(self) -> str:
        return f"RequestError({self.type!r}, {self.status}, {self.detail!r}, limit={self.limit!r})"


class MethodError(Exception):
    """A method-level error (RFC 8620 §3.6.2); further keywords are extra
    properties of the error object (e.g. ``existingId``)."""

    def __init__(self, type: str, description: str | None = None, **extra: Any):
        super().__init__(description or type)
        self.type = type
        self.description = description
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type}
        if self.description is not None:
            error["description"] = self.description
        error.update(self.extra)
        return error

    def __repr__(self) -> str:
        return f"MethodError({self.type!r}, {self.description!r})"


class SetError(Exception):
    """A per-object error of /set and /copy (RFC 8620 §5.3 "SetError").

    ``properties`` lists *all* invalid properties for ``invalidProperties``;
    further keywords are extra properties (``existingId`` for
    ``alreadyExists``, ...).
    """

    def __init__(
        self,
        type: str,
        description: str | None = None,
        properties: list[str] | None = None,
        **extra: Any,
    ):
        super().__init__(description or type)
        self.type = type
        self.description = description
        self.properties = properties
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type}
        if self.description is not None:
            error["description"] = self.description
        if self.properties is not None:
            error["properties"] = list(self.properties)
        error.update(self.extra)
        return error

    def __repr__(self) -> str:
        return f"SetError({self.type!r}, {self.description!r}, properties={self.properties!r})"


class CannotCalculateChanges(Exception):
    """Raised by a data type when it cannot compute changes from a state
    (log compacted, unknown state); becomes the ``cannotCalculateChanges``
    method error."""
