"""Uploads, downloads and Blob/copy on the real store (RFC 8620 §6), the
stale-upload janitor, and push (§7.3) from store commits."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from dualmail.jmap.service import UploadJanitor, make_site
from dualmail.model import ids
from tests.jmap.jmap_store_util import (
    BOB, INBOX, Client, aid, add_email, has_result, header, mid, result_of,
)


def upload(client, account, data=b"hello blob", content_type="text/plain"):
    response = client.request("POST", f"/jmap/upload/{aid(account)}/", body=data,
                              headers={**client.headers, "Content-Type": content_type})
    assert response.code == 201, response.body
    return json.loads(response.body)


def test_upload_and_download(client, alice, store):
    result = upload(client, alice)
    assert result["accountId"] == aid(alice) and result["type"] == "text/plain" and result["size"] == 10
    sha = ids.parse_blob_id(result["blobId"])
    with store.read(alice) as r:
        assert r.blob_info(sha)["uploaded"] == 0  # the injected clock's time
    response = client.request("GET", f"/jmap/download/{aid(alice)}/{result['blobId']}/note.txt?accept=text/plain")
    assert response.code == 200 and response.body == b"hello blob"
    assert header(response, "content-type") == "text/plain"
    assert header(response, "content-disposition").startswith('attachment; filename="note.txt"')
    ranged = client.request("GET", f"/jmap/download/{aid(alice)}/{result['blobId']}/n?accept=text/plain",
                            headers={**client.headers, "Range": "bytes=6-"})
    assert ranged.code == 206 and ranged.body == b"blob"
    assert header(ranged, "content-range") == "bytes 6-9/10"
    unsatisfiable = client.request("GET", f"/jmap/download/{aid(alice)}/{result['blobId']}/n",
                                   headers={**client.headers, "Range": "bytes=50-"})
    assert unsatisfiable.code == 416


def test_message_blob_is_downloadable(client, alice, store):
    raw = b"Subject: hi\r\n\r\nthe message\r\n"
    e = add_email(store, alice, raw=raw)
    with store.read(alice) as r:
        blob = ids.blob_id(r.email(e)["blob"])
    response = client.request("GET", f"/jmap/download/{aid(alice)}/{blob}/m.eml?accept=message/rfc822")
    assert response.code == 200 and response.body == raw


def test_other_accounts_blob_is_not_found(client, alice, bob, store):
    bob_client = Client(store, auth=BOB)
    theirs = upload(bob_client, bob, b"bob's secret")["blobId"]
    # alice asks for it in her own account: no such blob there
    response = client.request("GET", f"/jmap/download/{aid(alice)}/{theirs}/x")
    assert response.code == 404
    # and in bob's account: not her account
    response = client.request("GET", f"/jmap/download/{aid(bob)}/{theirs}/x")
    assert response.code == 404
    assert client.request("GET", f"/jmap/download/{aid(alice)}/Gjunk/x").code == 404
    # nor can she upload into it
    response = client.request("POST", f"/jmap/upload/{aid(bob)}/", body=b"x",
                              headers={**client.headers, "Content-Type": "text/plain"})
    assert response.code == 404


def test_blob_copy(client, alice, store):
    blob = upload(client, alice)["blobId"]
    result = client.call("Blob/copy", {"fromAccountId": aid(alice), "accountId": aid(alice),
                                       "blobIds": [blob, "G" + "0" * 64]})
    assert result["copied"] == {blob: blob}
    assert result["notCopied"] == {"G" + "0" * 64: {"type": "notFound",
                                                   "description": f"no blob {'G' + '0' * 64!r} in 'A1'"}}


def test_stale_uploads_are_removed(client, alice, clock, store):
    kept = upload(client, alice, b"attached")["blobId"]
    stale = upload(client, alice, b"forgotten")["blobId"]
    with store.write(alice) as tx:  # an Email references the first upload (Email/import, attachments)
        tx.create_email(b"attached", {"subject": "x"}, [INBOX], blob_sha=ids.parse_blob_id(kept))
    janitor = UploadJanitor(store, clock, ttl=100, interval=60)
    janitor.start()
    try:
        clock.advance(60)
        with store.read(alice) as r:
            assert r.blob(ids.parse_blob_id(stale)) is not None  # not old enough yet
        clock.advance(60)
        with store.read(alice) as r:
            assert r.blob(ids.parse_blob_id(stale)) is None
            assert r.blob(ids.parse_blob_id(kept)) == b"attached"
            assert r.uploads_before(10**12) == []
    finally:
        janitor.stop()
    assert client.request("GET", f"/jmap/download/{aid(alice)}/{stale}/x").code == 404


def test_site_runs_janitor_while_listening(store, clock):
    site = make_site(store, {"base-url": None}, clock)
    site.doStart()
    assert site.janitor._loop is not None and site.janitor._loop.running
    site.doStop()
    assert site.janitor._loop is None


# -- push -----------------------------------------------------------------------------


class Stream:
    """An open EventSource response read through StubTreq."""

    def __init__(self, client, query="types=*&closeafter=no&ping=0", headers=None):
        self.client = client
        self.chunks = []
        d = client.request("GET", "/jmap/eventsource/?" + query, headers=headers, fired=False)
        self.response = result_of(d)
        assert self.response.code == 200
        self.done = client.stub.collect(self.response, self.chunks.append)
        client.stub.flush()

    def events(self):
        text = b"".join(self.chunks).decode()
        out = []
        for block in text.split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if "event" in lines:
                out.append((lines["event"], json.loads(lines["data"])))
        return out


def test_store_commit_pushes_state_change(client, alice, store):
    stream = Stream(client)
    e = add_email(store, alice)
    client.stub.flush()
    with store.read(alice) as r:
        modseq = r.highest_modseq
    [(name, change)] = stream.events()
    assert name == "state"
    assert change == {"@type": "StateChange", "changed": {aid(alice): {
        "Email": str(modseq), "Mailbox": str(modseq), "Thread": str(modseq)}}}
    # an IMAP STORE \Seen: Email and Mailbox (counts) change, the Thread does not
    with store.write(alice) as tx:
        tx.set_keywords(e, ["$seen"])
    client.stub.flush()
    name, change = stream.events()[-1]
    with store.read(alice) as r:
        hms = r.mailbox(INBOX)["hms"]
        email_state = r.state("Email")
    assert change["changed"][aid(alice)] == {"Email": str(email_state), "Mailbox": str(hms)}
    assert str(hms) == str(email_state)
    # a JMAP Mailbox/set is pushed as well
    created = client.call("Mailbox/set", {"create": {"k": {"name": "New"}}}, alice)
    client.stub.flush()
    assert stream.events()[-1][1]["changed"][aid(alice)] == {"Mailbox": created["newState"]}
    assert not has_result(stream.done)


def test_push_is_per_account_and_filtered_by_type(client, alice, bob, store):
    stream = Stream(client, "types=Mailbox&closeafter=state&ping=0")
    add_email(store, bob)  # another account: nothing
    client.stub.flush()
    assert stream.events() == []
    client.call("Identity/get", {}, alice)  # creates the default Identity: not a Mailbox change
    client.stub.flush()
    assert stream.events() == []
    add_email(store, alice)
    client.stub.flush()
    [(name, change)] = stream.events()
    assert list(change["changed"][aid(alice)]) == ["Mailbox"]
    assert has_result(stream.done)  # closeafter=state ended the response


def test_push_token_stream_receives_events(client, alice, store):
    token = json.loads(client.request("POST", "/jmap/pushtoken").body)["token"]
    stream = Stream(client, f"types=*&closeafter=no&ping=0&access_token={token}", headers={})
    client.call("Mailbox/set", {"update": {mid(INBOX): {"sortOrder": 3}}}, alice)
    client.stub.flush()
    assert stream.events()[0][1]["changed"][aid(alice)]["Mailbox"]


def test_commit_from_another_process_is_pushed(client, alice, store, tmp_path):
    """CONTRACT §5: a commit made by another process (the CLI) reaches push
    once the service reads the commit log (the inotify watcher calls
    ``poll_external``)."""
    stream = Stream(client)
    script = (
        "import sys\n"
        "from dualmail.store.store import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "with store.write(int(sys.argv[2])) as tx:\n"
        "    tx.create_mailbox('From the CLI')\n"
        "store.close()\n"
    )
    repo = pathlib.Path(__file__).resolve().parents[2]
    target = getattr(store.kv, "url", None) or str(tmp_path / "data")  # either engine
    subprocess.run([sys.executable, "-c", script, target, str(alice)], check=True, cwd=repo)
    client.stub.flush()
    assert stream.events() == []
    store.poll_external()
    client.stub.flush()
    assert "Mailbox" in stream.events()[0][1]["changed"][aid(alice)]
