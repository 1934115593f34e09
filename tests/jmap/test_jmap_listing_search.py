"""Issue 12 (JMAP reads): Email/get of listing properties from the JMAP listing record
(``jmapw``, ``mime.jmap_listing``) with the same values as the full renderer, old stores
without the record (read from the summary; ``dualmail check --upgrade`` writes it), and
Email/query ``text`` finding new mail at once -- in memory over the real app and end to
end over HTTP with the real service (its indexer running)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from dualmail.cli import upgrade_account
from dualmail.jmap.types.email import LISTING
from dualmail.mail.ops import deliver, prepare, store_prepared
from dualmail.search import fts
from dualmail.store import keys as K
from dualmail.store.kv import prefix_end
from dualmail.store.store import open_store
from tests.conftest import start_jmap
from tests.jmap.jmap_store_util import INBOX, aid
from tests.search.corpus import MESSAGES, msg

LISTING_PROPS = sorted(LISTING)
# the same properties plus one the listing record does not hold: the full renderer
FULL_PROPS = LISTING_PROPS + ["textBody"]


def _load(store, account) -> list[int]:
    out = []
    with store.write(account) as tx:
        for m in MESSAGES:
            e, _ = store_prepared(tx, prepare(m["raw"], m["flags"], 1_700_000_000 + len(out)), [INBOX])
            out.append(e)
        # an Email/set-style create: no listing record made ahead
        e, _ = tx.create_email(msg("From: Zed <z@z.example>\nTo: a@b\nSubject: made here"), {
            "message_id": [], "in_reply_to": [], "references": [], "subject": "made here",
            "base_subject": "made here"}, [INBOX], [], 1_700_000_100)
        out.append(e)
    return out


def _get(client, account, props):
    got = client.call("Email/get", {"ids": None, "properties": props}, account)
    return {o["id"]: {k: v for k, v in o.items() if k in LISTING} for o in got["list"]}


def test_listing_get_equals_the_full_renderer(store, alice, client):
    _load(store, alice)
    listing = _get(client, alice, LISTING_PROPS)
    with store.read(alice) as r:
        assert len(listing) == len(list(r.received_order(None))) >= len(MESSAGES)  # one is \\Deleted: hidden
    assert any(o["subject"] == "made here" for o in listing.values())
    assert listing == _get(client, alice, FULL_PROPS)
    some = client.call("Email/get", {"ids": None, "properties": ["subject", "from"]}, alice)["list"]
    assert all(set(o) == {"id", "subject", "from"} for o in some)


def test_listing_reads_no_summary_and_old_stores_are_read_and_upgraded(store, alice, client, monkeypatch):
    from dualmail.store.txn import ReadView

    emails = _load(store, alice)
    want = _get(client, alice, FULL_PROPS)
    summaries: list[int] = []
    batches: list[int] = []  # the summaries of Emails without a record come in one read
    real, real_many = ReadView.summary, ReadView.summaries
    monkeypatch.setattr(ReadView, "summary", lambda self, e: summaries.append(e) or real(self, e))
    monkeypatch.setattr(ReadView, "summaries",
                        lambda self, es: (summaries.extend(es), batches.append(len(es)), real_many(self, es))[2])
    assert _get(client, alice, LISTING_PROPS) == want
    assert len(summaries) == 1  # only the Email created without a record
    # an old store: no listing records at all -> rendered from the summaries, same values
    store.kv.run_write(lambda w: [w.delete("jmapw", k) for k, _v in
                                  list(w.range("jmapw", K.acct(alice), prefix_end(K.acct(alice))))])
    summaries.clear()
    batches.clear()
    assert _get(client, alice, LISTING_PROPS) == want
    assert len(summaries) == len(want) and batches == [len(want)]
    with store.read(alice) as r:
        before = r.state("Email")
    assert upgrade_account(store, alice, batch=4) == (0, len(emails))  # the hidden one too
    summaries.clear()
    assert _get(client, alice, LISTING_PROPS) == want
    assert summaries == []
    with store.read(alice) as r:
        assert r.state("Email") == before  # nothing a client sees changed
    assert upgrade_account(store, alice) == (0, 0)


def test_listing_record_is_removed_with_the_email(store, alice, client):
    ids = _load(store, alice)
    with store.write(alice) as tx:
        tx.destroy_email(ids[0])
    with store.read(alice) as r:
        assert r.kv.get("jmapw", K.email(alice, ids[0])) is None
        assert r.kv.get("ftstok", K.email(alice, ids[0])) is None
        assert r.kv.get("jmapw", K.email(alice, ids[1])) is not None


def test_text_query_finds_unindexed_mail_at_once(store, alice, client):
    """No indexer at all: a just-committed Email is found by its term record."""
    _load(store, alice)
    fts.index_all(store, alice)
    deliver(store, alice, msg("From: r@x\nSubject: news", "a quetzalcoatlus flew by\n"), INBOX)
    with store.read(alice) as r:
        assert len(fts.unindexed(r.kv, alice)) == 1
    got = client.call("Email/query", {"filter": {"text": "quetzalcoatlus"}}, alice)
    assert len(got["ids"]) == 1
    assert client.call("Email/query", {"filter": {"text": "etzalco"}}, alice)["ids"] == got["ids"]
    assert client.call("Email/query", {"filter": {"text": "quetzalcoatlusx"}}, alice)["ids"] == []


def test_check_upgrade_command(tmp_path):
    data = tmp_path / "d"
    s = open_store(str(data), sync=False)
    a = s.create_account("a@x", "pw")
    for i in range(5):
        deliver(s, a, msg(f"From: n{i}@x\nSubject: s{i}", f"word{i}\n"), INBOX)
    fts.index_all(s, a)
    # make it an old store: no grams, no listing records
    def old(w):
        for table in ("ftsgram", "jmapw"):
            for k, _v in list(w.range(table, K.acct(a), prefix_end(K.acct(a)))):
                w.delete(table, k)
        w.delete("ftsmeta", K.acct(a) + b"g")
    s.kv.run_write(old)
    s.close()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run([sys.executable, "-m", "dualmail.cli", "--data", str(data), "check", "--upgrade"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": root}, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0].startswith("a@x: upgraded (search index terms ") and lines[0].endswith(
        "JMAP listing records 5)"), lines
    assert lines[-1] == "a@x: ok"
    s = open_store(str(data), sync=False)
    with s.read(a) as r:
        assert fts.grams_ready(r.kv, a)
        assert sum(1 for _ in r.kv.range("jmapw", K.acct(a), prefix_end(K.acct(a)))) == 5
    s.close()


AUTH = {b"Authorization": [b"Basic " + base64.b64encode(b"alice@example.org:secret")],
        b"Content-Type": [b"application/json"]}
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


@pytest.mark.e2e
@pytest_twisted.ensureDeferred
async def test_e2e_new_mail_is_found_and_indexed_within_a_second(tmp_path):
    """Over real HTTP with the real service: a message is found by a text query at once
    after its commit, and is in the full-text index (below the watermark) within 1 s
    (polled against a deadline, no fixed sleep)."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    data = str(tmp_path / "data")
    setup = open_store(data, sync=False)
    alice = setup.create_account("alice@example.org", "secret")
    setup.close()
    service, base = await start_jmap(data)
    pool = HTTPConnectionPool(reactor, persistent=False)
    http = HTTPClient(Agent(reactor, pool=pool))
    try:
        api = base + "/jmap/api"
        store = service.store

        async def query(text):
            body = json.dumps({"using": USING, "methodCalls": [
                ["Email/query", {"accountId": aid(alice), "filter": {"text": text}}, "0"]]}).encode()
            response = await http.post(api, data=body, headers=AUTH)
            assert response.code == 200
            [[name, result, _]] = json.loads(await response.content())["methodResponses"]
            assert name == "Email/query", result
            return result["ids"]

        for i in range(20):
            deliver(store, alice, msg(f"From: n{i}@x\nSubject: filler {i}", f"ordinary words {i}\n"), INBOX)
        e, _uid = deliver(store, alice, msg("From: r@x\nSubject: rare", "a quetzalcoatlus today\n"), INBOX)
        committed = time.monotonic()
        assert len(await query("quetzalcoatlus")) == 1  # at once: its term record
        deadline = committed + 1.0
        while True:
            with store.read(alice) as r:
                if fts.watermark(r.kv, alice) >= e:
                    break
            assert time.monotonic() < deadline, "not indexed within 1 s of its commit"
            await deferLater(reactor, 0.01, lambda: None)
        assert len(await query("quetzalcoatlus")) == 1
        assert len(await query("coatl")) == 1
    finally:
        await pool.closeCachedConnections()
        await service.stopService()


def test_emails_made_over_jmap_have_a_listing_record(store, alice, client):
    """Email/import (RFC 8621 §4.8), Email/set create (§4.6) and Email/copy (§4.7) store
    the listing record as APPEND and LMTP do, so a listing of them reads no summary."""
    from tests.jmap.jmap_store_util import mid

    raw = b"From: Bob <bob@example.org>\r\nSubject: imported here\r\nMessage-ID: <i@x>\r\n\r\nhi there\r\n"
    up = client.request("POST", f"/jmap/upload/{aid(alice)}/", body=raw,
                        headers={**client.headers, "Content-Type": "message/rfc822"})
    blob = json.loads(up.body)["blobId"]
    imported = client.call("Email/import", {"emails": {"i": {"blobId": blob, "mailboxIds": {mid(INBOX): True}}}},
                           alice)["created"]["i"]["id"]
    drafted = client.call("Email/set", {"create": {"d": {
        "mailboxIds": {mid(INBOX): True}, "subject": "a draft", "from": [{"email": "alice@example.org"}],
        "bodyValues": {"b": {"value": "draft text"}}, "textBody": [{"partId": "b", "type": "text/plain"}]}}},
        alice)["created"]["d"]["id"]
    from dualmail.model import ids

    for wire in (imported, drafted):
        e = ids.parse_id(ids.EMAIL, wire)
        with store.read(alice) as r:
            assert r.jmap_listing(e) is not None, wire
    got = _get(client, alice, LISTING_PROPS)
    full = _get(client, alice, FULL_PROPS)
    assert got == full
