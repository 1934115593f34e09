"""PushSubscription/get and /set (RFC 8620 §7.2; there is no /changes).

A subscription belongs to the user the request authenticated as (the
principal: Basic and Bearer credentials of one user see the same ones) and
is stored in the store (``store/pushsubs.py``), one transaction per object
written, outside every account's JMAP state. Neither method takes an
``accountId`` or returns a ``state``.

Creating one queues its PushVerification; StateChanges start only once the
client has set the ``verificationCode`` it received (``dualmail.push.runner``
sends both). ``url`` must be https (``http://`` to a loopback address only
with the server's ``--push-allow-http-loopback``, for tests and development);
``keys`` are checked as RFC 8291 needs them; ``expires`` is capped at
``max_expiry`` (7 days) and set to that when omitted.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...model import ids
from ...model.dates import parse_utc_date
from ...push import webpush
from ...push.webpush import PUSH_ID, subscription_id
from ...store import pushsubs
from ...store.store import Store
from ..args import ArgReader
from ..dispatch import CallContext, Method, Responses
from ..errors import MethodError, SetError
from ..session import CORE
from .email_props import utc_date

PROPERTIES = ("id", "deviceClientId", "url", "keys", "verificationCode", "expires", "types")
PRIVATE = frozenset({"url", "keys"})  # never returned (RFC 8620 §7.2.1)
MAX_EXPIRY = 7 * 86400  # seconds: RFC 8620 §7.2 "at least 48 hours ... SHOULD be at least 7 days"
MAX_PER_USER = 50
MAX_DEVICE_CLIENT_ID = 255
MAX_TYPES = 64


@dataclass(frozen=True, slots=True)
class PushConfig:
    """The server's push settings the methods need."""

    allow_http_loopback: bool = False
    max_expiry: int = MAX_EXPIRY
    max_per_user: int = MAX_PER_USER
    vapid_fingerprint: str | None = None  # the key subscriptions are made under (RFC 9749 §4)
    wake: Callable[[], None] | None = None  # the runner: a PushVerification is due


class PushSubscriptions:
    def __init__(self, store: Store, now: Callable[[], float], config: PushConfig):
        self.store = store
        self.now = now
        self.config = config

    # -- /get --

    def get(self, ctx: CallContext, args: dict[str, Any]) -> Responses:
        r = ArgReader(args)
        wanted = r.id_list("ids", None, nullable=True)
        properties = r.string_list("properties", None, nullable=True)
        r.finish()
        if properties is None:
            props = [p for p in PROPERTIES if p not in PRIVATE]
        else:
            unknown = [p for p in properties if p not in PROPERTIES]
            if unknown:
                raise MethodError("invalidArguments", f"unknown property {unknown[0]!r}")
            private = [p for p in properties if p in PRIVATE]
            if private:
                raise MethodError("forbidden", f"{private[0]} is never returned (RFC 8620 §7.2.1)")
            props = ["id", *[p for p in dict.fromkeys(properties) if p != "id"]]
        if wanted is not None and len(wanted) > ctx.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", f"more than {ctx.limits.max_objects_in_get} ids")
        a = int(ctx.principal)
        with self.store.kv.read() as kv:
            cred = pushsubs.credential_mark(kv, a)
            mine = {p: rec for p, rec in pushsubs.listing(kv, a) if rec.get("cred") in (None, cred)}
        now = int(self.now())
        found, not_found = [], []
        if wanted is None:
            numbers = [p for p, rec in mine.items() if not _expired(rec, now)]
        else:
            numbers = []
            for sid in dict.fromkeys(wanted):
                p = ids.parse_id(PUSH_ID, sid)
                if p is None or p not in mine or _expired(mine[p], now):
                    not_found.append(sid)
                else:
                    numbers.append(p)
        for p in numbers:
            obj = _to_json(p, mine[p])
            found.append({k: obj[k] for k in props})
        return [("PushSubscription/get", {"list": found, "notFound": not_found})]

    # -- /set --

    def set(self, ctx: CallContext, args: dict[str, Any]) -> Responses:
        r = ArgReader(args)
        create = r.object("create", None, nullable=True) or {}
        update = r.object("update", None, nullable=True) or {}
        destroy = r.id_list("destroy", None, nullable=True, refs=True) or []
        r.finish()
        if len(create) + len(update) + len(destroy) > ctx.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"more than {ctx.limits.max_objects_in_set} objects")
        a = int(ctx.principal)
        out: dict[str, Any] = {"created": {}, "updated": {}, "destroyed": [],
                               "notCreated": {}, "notUpdated": {}, "notDestroyed": {}}
        made = 0
        for cid, obj in create.items():
            try:
                sid, created = self._create(a, obj)
            except SetError as e:
                out["notCreated"][cid] = e.to_json()
                continue
            ctx.created_ids[cid] = sid
            out["created"][cid] = created
            made += 1
        for sid, patch in update.items():
            target = ctx.resolve_creation_id(sid) if isinstance(sid, str) else None
            try:
                out["updated"][sid] = self._update(a, target, patch)
            except SetError as e:
                out["notUpdated"][sid] = e.to_json()
        for sid in destroy:
            target = ctx.resolve_creation_id(sid)
            p = ids.parse_id(PUSH_ID, target)
            with self.store.kv.write(a) as w:
                gone = p is not None and pushsubs.destroy(w, a, p)
            if gone:
                out["destroyed"].append(sid)
            else:
                out["notDestroyed"][sid] = SetError("notFound").to_json()
        if made and self.config.wake is not None:
            self.config.wake()
        return [("PushSubscription/set", {k: (v or None) for k, v in out.items()})]

    def _create(self, a: int, obj: Any) -> tuple[str, dict[str, Any]]:
        if not isinstance(obj, dict):
            raise SetError("invalidProperties", "a PushSubscription must be an object")
        bad: list[str] = []
        why: list[str] = []

        def invalid(prop: str, text: str) -> None:
            bad.append(prop)
            why.append(text)

        unknown = [k for k in obj if k not in PROPERTIES]
        for k in unknown:
            invalid(k, f"unknown property {k!r}")
        if "id" in obj:
            invalid("id", "id is set by the server")
        device = obj.get("deviceClientId")
        if not isinstance(device, str) or not device or len(device) > MAX_DEVICE_CLIENT_ID:
            invalid("deviceClientId", f"deviceClientId must be a String of 1 to {MAX_DEVICE_CLIENT_ID} characters")
        url = obj.get("url")
        url_error = webpush.check_url(url, self.config.allow_http_loopback)
        if url_error is not None:
            invalid("url", url_error)
        keys = obj.get("keys")
        if keys is not None:
            parsed = webpush.parse_keys(keys)
            if isinstance(parsed, str):
                invalid("keys", parsed)
        if obj.get("verificationCode") is not None:
            invalid("verificationCode", "verificationCode must be null at creation (RFC 8620 §7.2)")
        now = int(self.now())
        expires, expires_error = self._expires(obj.get("expires"), now)
        if expires_error:
            invalid("expires", expires_error)
        types = obj.get("types")
        types_error = _check_types(types)
        if types_error:
            invalid("types", types_error)
        if bad:
            raise SetError("invalidProperties", "; ".join(why), properties=bad)
        record = {"deviceClientId": device, "url": url, "keys": keys, "code": secrets.token_hex(16),
                  "verified": False, "expires": expires, "types": types, "states": {},
                  "vapid": self.config.vapid_fingerprint, "created": now}
        with self.store.kv.write(a) as w:
            record["cred"] = pushsubs.credential_mark(w, a)
            if pushsubs.count(w, a) >= self.config.max_per_user:
                raise SetError("overQuota", f"at most {self.config.max_per_user} push subscriptions per user")
            p = pushsubs.create(w, a, record, now * 1000)
        created: dict[str, Any] = {"id": subscription_id(p), "expires": utc_date(expires)}
        for prop in ("keys", "verificationCode", "types"):
            if prop not in obj:
                created[prop] = None
        return subscription_id(p), created

    def _expires(self, value: Any, now: int) -> tuple[int, str | None]:
        """(the expiry to store, why the value is invalid)."""
        cap = now + self.config.max_expiry
        if value is None:
            return cap, None
        when = parse_utc_date(value)
        if when is None:
            return cap, "expires must be a UTCDate"
        if when <= now:
            return cap, "expires is in the past"
        return min(when, cap), None

    def _update(self, a: int, sid: str | None, patch: Any) -> dict[str, Any] | None:
        p = ids.parse_id(PUSH_ID, sid)
        if not isinstance(patch, dict):
            raise SetError("invalidPatch", "a PatchObject must be an object")
        now = int(self.now())
        with self.store.kv.write(a) as w:
            rec = pushsubs.get(w, a, p) if p is not None else None
            if rec is None or _expired(rec, now):
                raise SetError("notFound")
            current = _to_json(p, rec)
            new = dict(rec)
            bad: list[str] = []
            why: list[str] = []
            server_set: dict[str, Any] = {}
            for prop, value in patch.items():
                if prop not in PROPERTIES:
                    bad.append(prop)
                    why.append(f"unknown property {prop!r}" if "/" not in prop
                               else f"{prop!r}: only whole properties can be patched")
                elif prop in ("id", "deviceClientId", "url", "keys"):
                    if value != (rec.get(prop) if prop != "id" else current["id"]):
                        bad.append(prop)
                        why.append(f"{prop} is immutable")
                elif prop == "verificationCode":
                    if not isinstance(value, str) or not secrets.compare_digest(value.encode(), rec["code"].encode()):
                        bad.append(prop)
                        why.append("wrong verificationCode (RFC 8620 §7.2.2)")
                    else:
                        new["verified"] = True
                elif prop == "expires":
                    expires, error = self._expires(value, now)
                    if error:
                        bad.append(prop)
                        why.append(error)
                    else:
                        new["expires"] = expires
                        if value is None or parse_utc_date(value) != expires:
                            server_set["expires"] = utc_date(expires)
                elif prop == "types":
                    error = _check_types(value)
                    if error:
                        bad.append(prop)
                        why.append(error)
                    else:
                        new["types"] = value
            if bad:
                raise SetError("invalidProperties", "; ".join(why), properties=bad)
            if new != rec:
                pushsubs.put(w, a, p, new)
        return server_set or None


def _check_types(types: Any) -> str | None:
    if types is None:
        return None
    if not isinstance(types, list) or len(types) > MAX_TYPES or not all(
            isinstance(t, str) and 0 < len(t) <= 64 for t in types):
        return f"types must be null or an array of at most {MAX_TYPES} type names"
    return None


def _expired(rec: dict[str, Any], now: int) -> bool:
    return rec.get("expires") is not None and int(rec["expires"]) <= now


def _to_json(p: int, rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": subscription_id(p),
        "deviceClientId": rec["deviceClientId"],
        "url": rec["url"],
        "keys": rec.get("keys"),
        # what the client set, once it has: the code is only ever told to the URL
        "verificationCode": rec["code"] if rec.get("verified") else None,
        "expires": utc_date(int(rec["expires"])) if rec.get("expires") is not None else None,
        "types": rec.get("types"),
    }


def push_subscription_methods(store: Store, now: Callable[[], float], config: PushConfig) -> dict[str, Method]:
    ps = PushSubscriptions(store, now, config)
    return {"PushSubscription/get": Method(CORE, ps.get), "PushSubscription/set": Method(CORE, ps.set)}
