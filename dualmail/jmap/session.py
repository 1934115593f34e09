"""The JMAP Session resource (RFC 8620 §2): limits, accounts and the Session
object with its state hash.

``CoreLimits`` holds every limit the core capability advertises plus the
server-side knobs of the JMAP layer; ``build_session`` renders the Session
object. Pure values: must not import twisted, klein or the store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CORE = "urn:ietf:params:jmap:core"


@dataclass(frozen=True, slots=True)
class CoreLimits:
    """Limits of ``urn:ietf:params:jmap:core`` (RFC 8620 §2) and the server
    knobs of this package. Defaults are the RFC's suggested minimums."""

    max_size_upload: int = 50_000_000
    max_concurrent_upload: int = 4
    max_size_request: int = 10_000_000
    max_concurrent_requests: int = 4
    max_calls_in_request: int = 16
    max_objects_in_get: int = 500
    max_objects_in_set: int = 500
    collation_algorithms: tuple[str, ...] = ("i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap")
    # not advertised:
    max_changes: int = 5000  # cap on /changes and /queryChanges pages
    max_query_limit: int = 5000  # /query "limit" is clamped to this
    ping_min: int = 15  # EventSource ping clamp (RFC 8620 §7.3: min <= 30, max >= 300)
    ping_max: int = 600

    def capability(self) -> dict[str, Any]:
        """The value of the core capability in the Session object."""
        return {
            "maxSizeUpload": self.max_size_upload,
            "maxConcurrentUpload": self.max_concurrent_upload,
            "maxSizeRequest": self.max_size_request,
            "maxConcurrentRequests": self.max_concurrent_requests,
            "maxCallsInRequest": self.max_calls_in_request,
            "maxObjectsInGet": self.max_objects_in_get,
            "maxObjectsInSet": self.max_objects_in_set,
            "collationAlgorithms": list(self.collation_algorithms),
        }


@dataclass(frozen=True, slots=True)
class Account:
    """One account the principal may access (RFC 8620 §1.6.2, §2).

    ``capabilities``: capability URI -> account capability object; methods of
    a capability are usable with this account only if it is listed here.
    """

    name: str
    is_personal: bool = True
    is_read_only: bool = False
    capabilities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "isPersonal": self.is_personal,
            "isReadOnly": self.is_read_only,
            "accountCapabilities": {uri: dict(value) for uri, value in self.capabilities.items()},
        }


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What the backend knows about an authenticated principal."""

    username: str
    accounts: Mapping[str, Account]
    primary_accounts: Mapping[str, str] = field(default_factory=dict)


def server_capabilities(limits: CoreLimits, extra: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The ``capabilities`` object: core (from ``limits``) plus ``extra``."""
    capabilities: dict[str, Any] = {CORE: limits.capability()}
    for uri, value in extra.items():
        if uri != CORE:
            capabilities[uri] = dict(value)
    return capabilities


def build_session(
    *,
    capabilities: Mapping[str, Any],
    info: SessionInfo,
    base_url: str,
) -> dict[str, Any]:
    """The Session object (RFC 8620 §2). ``base_url`` has no trailing slash,
    e.g. ``"https://mail.example.com"``. ``state`` is a hash of everything
    else, so it changes whenever any other property does."""
    session: dict[str, Any] = {
        "capabilities": {uri: value for uri, value in capabilities.items()},
        "accounts": {account_id: account.to_json() for account_id, account in info.accounts.items()},
        "primaryAccounts": {uri: account_id for uri, account_id in info.primary_accounts.items() if uri != CORE},
        "username": info.username,
        "apiUrl": f"{base_url}/jmap/api",
        "downloadUrl": f"{base_url}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}",
        "uploadUrl": f"{base_url}/jmap/upload/{{accountId}}/",
        "eventSourceUrl": f"{base_url}/jmap/eventsource/?types={{types}}&closeafter={{closeafter}}&ping={{ping}}",
    }
    session["state"] = session_state(session)
    return session


def session_state(session: Mapping[str, Any]) -> str:
    """A short hash of the Session object's content (without ``state``)."""
    content = {key: value for key, value in session.items() if key != "state"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
