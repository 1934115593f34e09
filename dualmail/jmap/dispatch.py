"""Run the method calls of one JMAP Request (RFC 8620 §3.3-§3.7).

A registry is a plain dict ``{"Core/echo": Method(CORE, echo), ...}``. For
each call, in order, the ``Dispatcher``: checks the method exists and its
capability is in ``using`` (else ``unknownMethod``, §3.6.2), resolves
``#``-prefixed result references against earlier responses, and calls the
handler with a ``CallContext`` and the argument dict. A handler returns a list
of ``(responseName, arguments)`` pairs (more than one for implicit calls, e.g.
/copy with onSuccessDestroyOriginal), synchronously or as an awaitable
(Deferred, coroutine).

Per-call isolation: ``MethodError`` becomes ``["error", {...}, callId]``; any
other exception is logged and becomes ``serverFail``; the next call runs.

Must not import twisted.internet, klein or the store (``twisted.logger`` is
fine): the app awaits ``Dispatcher.run``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from twisted.logger import Logger

from ..model.errors import UnavailableError
from .errors import MethodError
from .request import Invocation, Request, resolve_references
from .session import CORE, Account, CoreLimits

Responses = Sequence[tuple[str, Mapping[str, Any]]]
Handler = Callable[["CallContext", dict[str, Any]], Union[Responses, Awaitable[Responses]]]


class ReadOnlyPrincipal(int):
    """An account number authenticated by a token of scope "jmap-read": every call that
    would change something answers ``forbidden`` (RFC 8620 §3.6.2)."""

    read_only = True


@dataclass(frozen=True, slots=True)
class Method:
    """A registered method: the capability that must be in ``using`` (and in
    the account's capabilities for ``ctx.account``), and its handler."""

    capability: str
    handler: Handler


@dataclass(slots=True)
class CallContext:
    """What a method handler knows about the request it runs in.

    ``created_ids`` is shared by every call of the request (creation id ->
    real id, RFC 8620 §3.3; keys without the ``#``). Handlers add to it after
    their changes are committed.
    """

    principal: Any
    accounts: Mapping[str, Account]
    using: frozenset[str]
    created_ids: dict[str, str]
    limits: CoreLimits
    method_name: str = ""
    capability: str = CORE
    call_id: str = ""
    methods: Mapping[str, Method] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # type-specific /set arguments
    client: str = ""  # the HTTP client's address (EmailSubmission's Received field)

    def account(
        self,
        args: Mapping[str, Any] | str | None,
        key: str = "accountId",
        *,
        write: bool = False,
        capability: str | None = None,
    ) -> str:
        """Check access to the account named by ``args[key]`` (or given
        directly) and return its id.

        Raises invalidArguments (missing/not an Id), accountNotFound,
        accountNotSupportedByMethod (the account lacks the method's
        capability), accountReadOnly (``write`` on a read-only account). For
        ``key="fromAccountId"`` the first two are fromAccountNotFound and
        fromAccountNotSupportedByMethod (RFC 8620 §5.4).
        """
        account_id = args.get(key) if isinstance(args, Mapping) else args
        if not isinstance(account_id, str):
            raise MethodError("invalidArguments", f"argument {key!r} must be an Id")
        prefix = "from" if key == "fromAccountId" else ""
        account = self.accounts.get(account_id)
        if account is None:
            raise MethodError(_prefixed(prefix, "accountNotFound"), f"no account {account_id!r}")
        needed = capability or self.capability
        if needed != CORE and needed not in account.capabilities:
            raise MethodError(
                _prefixed(prefix, "accountNotSupportedByMethod"),
                f"account {account_id!r} does not support {self.method_name or needed}",
            )
        if write and getattr(self.principal, "read_only", False):
            raise MethodError("forbidden", "these credentials are read-only (a jmap-read token)")
        if write and account.is_read_only:
            raise MethodError("accountReadOnly", f"account {account_id!r} is read-only")
        return account_id

    def resolve_creation_id(self, value: str) -> str | None:
        """``"#k1"`` -> the id created for ``k1`` (None if unknown); any other
        string is returned unchanged."""
        if value.startswith("#"):
            return self.created_ids.get(value[1:])
        return value

    def call(self, name: str, args: dict[str, Any]) -> Responses | Awaitable[Responses]:
        """Make an implicit call to another registered method (RFC 8620 §5.4
        onSuccessDestroyOriginal), with the same context; the caller appends
        the result to its own responses (catching ``MethodError`` itself)."""
        method = self.methods[name]
        sub = CallContext(
            self.principal, self.accounts, self.using, self.created_ids, self.limits,
            name, method.capability, self.call_id, self.methods,
        )
        sub.client = self.client
        return method.handler(sub, args)


def _prefixed(prefix: str, name: str) -> str:
    return prefix + name[0].upper() + name[1:] if prefix else name


def echo(ctx: CallContext, args: dict[str, Any]) -> Responses:
    """Core/echo (RFC 8620 §4): the arguments, unchanged."""
    return [("Core/echo", args)]


def core_methods() -> dict[str, Method]:
    return {"Core/echo": Method(CORE, echo)}


class Dispatcher:
    """Runs the calls of a ``Request`` against a method registry."""

    log = Logger()

    def __init__(self, methods: Mapping[str, Method], limits: CoreLimits):
        self.methods = methods
        self.limits = limits

    async def run(
        self,
        request: Request,
        *,
        principal: Any,
        accounts: Mapping[str, Account],
        session_state: str,
        client: str = "",
    ) -> dict[str, Any]:
        """Process every call in order; return the Response object (§3.4)."""
        created_ids = dict(request.created_ids or {})
        responses: list[Invocation] = []
        for call in request.method_calls:
            ctx = CallContext(
                principal, accounts, request.using, created_ids, self.limits,
                call.name, CORE, call.call_id, self.methods,
            )
            ctx.client = client
            responses.extend(await self._run_call(ctx, call, responses))
        response: dict[str, Any] = {
            "methodResponses": [r.to_json() for r in responses],
            "sessionState": session_state,
        }
        if request.created_ids is not None:
            response["createdIds"] = created_ids
        return response

    async def _run_call(self, ctx: CallContext, call: Invocation, earlier: list[Invocation]) -> list[Invocation]:
        method = self.methods.get(call.name)
        if method is None or method.capability not in ctx.using:
            return [Invocation("error", {"type": "unknownMethod"}, call.call_id)]
        ctx.capability = method.capability
        try:
            args = resolve_references(call.arguments, earlier)
            result = method.handler(ctx, args)
            if inspect.isawaitable(result):
                result = await result
            return [Invocation(name, dict(arguments), call.call_id) for name, arguments in result]
        except MethodError as e:
            return [Invocation("error", e.to_json(), call.call_id)]
        except UnavailableError as e:  # the shared database is away: rolled back (RFC 8620 §3.6.2)
            self.log.warn("JMAP method {method}: {err}", method=call.name, err=e.message)
            return [Invocation("error", {"type": "serverUnavailable", "description": e.message}, call.call_id)]
        except Exception:
            self.log.failure("JMAP method {method} (call {call_id}) failed", method=call.name, call_id=call.call_id)
            return [
                Invocation("error", {"type": "serverFail", "description": "internal server error"}, call.call_id)
            ]
