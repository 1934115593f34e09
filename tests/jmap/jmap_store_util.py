"""Helpers for the store-backed JMAP tests: a StubTreq client over the real
app (``dualmail.jmap.service.build_app``) on a real store, and small store
helpers. Import as ``tests.jmap.jmap_store_util``."""

from __future__ import annotations

import base64
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from dualmail.jmap.service import build_app
from dualmail.jmap.session import CORE, CoreLimits
from dualmail.model import ids

BASE = "https://mail.example.org"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
USING = [CORE, MAIL, SUBMISSION, VACATION]
JSON = {"Content-Type": "application/json"}
ALICE = ("alice@example.org", "secret")
BOB = ("bob@example.org", "hunter2")
INBOX, DRAFTS, SENT, TRASH, JUNK, ARCHIVE = range(1, 7)  # default mailbox numbers (store)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def mid(n: int) -> str:
    return ids.format_id(ids.MAILBOX, n)


def aid(n: int) -> str:
    return ids.format_id(ids.ACCOUNT, n)


def result_of(d: Deferred) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def summary(message_id: str = "", subject: str = "s", in_reply_to: tuple = (), references: tuple = ()) -> dict:
    """A minimal parsed-message summary (no MIME needed)."""
    return {
        "message_id": [message_id] if message_id else [],
        "in_reply_to": list(in_reply_to),
        "references": list(references),
        "subject": subject,
        "base_subject": subject,
    }


def add_email(store, account: int, mailboxes=(INBOX,), keywords=(), received=1_700_000_000,
              message_id: str = "", in_reply_to: tuple = (), subject: str = "s",
              raw: bytes | None = None) -> int:
    """An Email created as IMAP APPEND / LMTP would: one store transaction."""
    raw = raw or f"Message-ID: <{message_id or received}>\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    with store.write(account) as tx:
        e, _uids = tx.create_email(raw, summary(message_id, subject, in_reply_to), list(mailboxes), list(keywords),
                                   received)
    return e


class Client:
    """Requests through StubTreq against ``build_app`` on ``store``; password
    checks run synchronously, the failed-login delay on ``clock``."""

    def __init__(self, store, clock: Clock | None = None, auth: tuple[str, str] = ALICE,
                 limits: CoreLimits | None = None, delay: float = 1.0):
        self.store = store
        self.clock = clock or Clock()
        self.app = build_app(store, self.clock, base_url=BASE, limits=limits,
                             run_blocking=lambda f, *a: maybeDeferred(f, *a), failed_login_delay=delay)
        self.stub = StubTreq(self.app.app.resource())
        self.headers = basic(*auth)

    def request(self, method: str, path: str, *, body: Any = None, headers: dict | None = None,
                fired: bool = True, **kw: Any) -> Any:
        url = path if path.startswith("http") else BASE + path
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        d = self.stub.request(method, url, data=body, headers=self.headers if headers is None else headers, **kw)
        self.stub.flush()
        return self.finish(d) if fired else d

    def finish(self, d: Deferred) -> Any:
        response = result_of(d)
        d2 = self.stub.content(response)
        self.stub.flush()
        response.body = result_of(d2)
        return response

    def api(self, calls: list, using: list[str] = USING, **extra: Any) -> list:
        response = self.request("POST", "/jmap/api", body={"using": using, "methodCalls": calls, **extra},
                                headers={**self.headers, **JSON})
        assert response.code == 200, response.body
        return json.loads(response.body)["methodResponses"]

    def call(self, name: str, args: dict, account: int | None = None) -> dict:
        """One call; returns its arguments (asserting it is not an error)."""
        if account is not None:
            args = {"accountId": aid(account), **args}
        [[response_name, result, _call_id]] = self.api([[name, args, "c0"]])
        assert response_name == name, result
        return result

    def error(self, name: str, args: dict) -> dict:
        [[response_name, result, _call_id]] = self.api([[name, args, "c0"]])
        assert response_name == "error", result
        return result


def header(response: Any, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


def has_result(d: Deferred) -> bool:
    """Has ``d`` a result yet (``called`` is also true while it waits on another)?"""
    box: list[Any] = []

    def keep(result: Any) -> Any:
        box.append(result)
        return result

    d.addBoth(keep)
    return bool(box)
