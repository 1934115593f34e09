"""No existence oracle across accounts (issue 17; docs/security.md): for every JMAP
method of the dispatcher's registry and every IMAP command that takes a mailbox name or
an object id, alice naming one of bob's ids, names, blobs or his account gets exactly
the answer she gets for one that exists nowhere (after the two names are written the
same), and nothing changes in either account.

The method list comes from the registry (``core_methods`` + ``store_methods``) and the
command list from ``imap.states.LEGAL``: a method or command added later fails
``test_every_method_and_command_is_covered`` until it has a case here."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import quote

import pytest

from dualmail.imap.states import LEGAL
from dualmail.imap.wire import commands as c
from dualmail.jmap.dispatch import core_methods
from dualmail.jmap.types import store_methods
from dualmail.model import ids
from tests.imap.imap_util import Client as ImapClient
from tests.jmap.jmap_store_util import ALICE, BOB, USING
from tests.jmap.jmap_store_util import Client as JmapClient
from tests.jmap_mail.jmap_mail_util import add, message, snapshot

# id kind of each data type (the prefix letter of its ids)
KINDS = {"Mailbox": ids.MAILBOX, "Email": ids.EMAIL, "Thread": ids.THREAD, "Identity": ids.IDENTITY,
         "EmailSubmission": getattr(ids, "SUBMISSION", None),
         # Quota ids are Q1/Q2 in every account (RFC 9425: one per limited resource), so an
         # id names no other account's object; the accountId cases cover it
         "Quota": ids.QUOTA}
NO_ID = {"Core/echo"}  # takes no account and no id


@pytest.fixture
def world(store):
    alice = store.create_account(*ALICE)
    bob = store.create_account(*BOB)
    add(store, alice, message("alice's", "hello alice"))
    bob_client = JmapClient(store, auth=BOB)
    bob_client.call("Mailbox/set", {"create": {"a": {"name": "BobSecret"}, "b": {"name": "Hidden"}}}, bob)
    bob_client.call("Identity/set", {"create": {"i": {"email": "bob@example.org", "name": "Bob 2"}}}, bob)
    store.set_quota(BOB[0], {"count": 1000, "octets": 10**9})
    for i in range(6):
        add(store, bob, message(f"bob secret {i}", f"bob body {i}", message_id=f"bob{i}@example.org"))
    [email] = bob_client.call("Email/get", {"ids": None, "properties": ["id", "blobId", "threadId"]}, bob)["list"][:1]
    client = JmapClient(store, auth=ALICE)
    client.headers = {"Authorization": "Bearer " + store.create_token(ALICE[0])}
    client.call("Identity/get", {"ids": None}, alice)  # her default identity is made at first use
    bob_ids = {
        ids.MAILBOX: bob_client.call("Mailbox/query", {"filter": {"name": "BobSecret"}}, bob)["ids"][0],
        ids.EMAIL: ids.format_id(ids.EMAIL, 6),
        ids.THREAD: ids.format_id(ids.THREAD, 6),
        ids.IDENTITY: bob_client.call("Identity/get", {"ids": None}, bob)["list"][-1]["id"],
        "blob": email["blobId"],
        "account": ids.format_id(ids.ACCOUNT, bob),
    }
    missing = {
        ids.MAILBOX: ids.format_id(ids.MAILBOX, 9999), ids.EMAIL: ids.format_id(ids.EMAIL, 9999),
        ids.THREAD: ids.format_id(ids.THREAD, 9999), ids.IDENTITY: ids.format_id(ids.IDENTITY, 9999),
        "blob": ids.blob_id(hashlib.sha256(b"exists nowhere").hexdigest()),
        "account": ids.format_id(ids.ACCOUNT, 9999),
    }
    assert len(missing["blob"]) == len(bob_ids["blob"]) and missing["blob"] != bob_ids["blob"]
    return {"store": store, "alice": alice, "bob": bob, "client": client, "bob_ids": bob_ids, "missing": missing}


def _set_cases(kind: str, X: str, blob: str) -> list[dict]:
    cases = [{"update": {X: {}}}, {"destroy": [X]}]
    if kind == "Mailbox":
        cases += [{"create": {"k": {"name": "n", "parentId": X}}}, {"update": {X: {"name": "renamed"}}},
                  {"destroy": [X], "onDestroyRemoveEmails": True}]
    if kind == "Email":
        cases += [{"create": {"k": {"mailboxIds": {X: True}, "subject": "s"}}},
                  {"update": {"E1": {f"mailboxIds/{X}": True}}}, {"update": {X: {"keywords/$seen": True}}}]
    return cases


def _blob_cases(name: str, X: str) -> list[dict]:
    return {
        "Email/import": [{"emails": {"k": {"blobId": X, "mailboxIds": {"M1": True}}}}],
        "Email/parse": [{"blobIds": [X]}],
        "Email/set": [{"create": {"k": {"mailboxIds": {"M1": True}, "bodyStructure": {"blobId": X,
                                                                                      "type": "text/plain"}}}},
                      {"create": {"k": {"mailboxIds": {"M1": True}, "textBody": [{"partId": "1", "type": "text/plain"}],
                                        "bodyValues": {"1": {"value": "x"}},
                                        "attachments": [{"blobId": X, "type": "image/png"}]}}}],
    }.get(name, [])


def cases_for(name: str, X: dict[str, str]) -> list[dict]:
    """Arguments of ``name`` naming the objects in ``X`` (kind -> id); every case is
    also run with the account id itself (``accountId``/``fromAccountId``)."""
    datatype, _, verb = name.partition("/")
    out: list[dict] = [{"accountId": X["account"], **({"ids": None} if verb == "get" else {})}]
    kind = KINDS.get(datatype)
    x = X.get(kind) if kind else None
    if verb == "get" and x:
        out.append({"ids": [x]})
    if verb == "set" and x:
        out += _set_cases(datatype, x, X["blob"])
    if verb == "query":
        filters = {"Email": [{"inMailbox": X[ids.MAILBOX]}, {"inMailboxOtherThan": [X[ids.MAILBOX]]},
                             {"inThread": X[ids.THREAD]}],
                   "Mailbox": [{"parentId": X[ids.MAILBOX]}],
                   "EmailSubmission": [{"emailIds": [X[ids.EMAIL]]}, {"identityIds": [X[ids.IDENTITY]]},
                                       {"threadIds": [X[ids.THREAD]]}]}.get(datatype, [])
        out += [{"filter": f} for f in filters]
        if x:
            out.append({"anchor": x})
    if verb == "queryChanges" and x:
        out.append({"sinceQueryState": "1", "upToId": x})
    if name == "Email/copy" or name == "Blob/copy":
        item = ({"create": {"k": {"id": "E1", "mailboxIds": {"M1": True}}}} if name == "Email/copy"
                else {"blobIds": [X["blob"]]})
        out = [{"fromAccountId": X["account"], **item}]
        if name == "Email/copy":
            out.append({"fromAccountId": X["account"], "create": {"k": {"id": X[ids.EMAIL],
                                                                        "mailboxIds": {"M1": True}}}})
    if name == "SearchSnippet/get":
        out += [{"emailIds": [X[ids.EMAIL]], "filter": {"text": "secret"}},
                {"emailIds": ["E1"], "filter": {"inMailbox": X[ids.MAILBOX]}}]
    if name == "EmailSubmission/set":
        out += [{"create": {"k": {"emailId": X[ids.EMAIL], "identityId": "I1"}}},
                {"create": {"k": {"emailId": "E1", "identityId": X[ids.IDENTITY]}}}]
    if name == "Thread/get":
        out.append({"ids": [X[ids.THREAD]]})
    out += _blob_cases(name, X["blob"])
    return out


def _normal(value, bob: dict[str, str], missing: dict[str, str]) -> str:
    text = json.dumps(value, sort_keys=True)
    for kind in sorted(bob, key=lambda k: -len(bob[k])):
        text = text.replace(bob[kind], f"<{kind}>").replace(missing[kind], f"<{kind}>")
    return text


def _registry(store) -> list[str]:
    return sorted({**core_methods(), **store_methods(store, lambda: 1_700_000_000.0)})


def test_every_method_and_command_is_covered(world):
    for name in _registry(world["store"]):
        if name in NO_ID:
            continue
        datatype = name.partition("/")[0]
        assert datatype in KINDS or name in ("Blob/copy", "SearchSnippet/get") or datatype == "VacationResponse", (
            f"{name}: add its id kind to KINDS (and its cases to cases_for)")
        assert cases_for(name, world["bob_ids"]), name
    unclassified = set(LEGAL) - NAME_COMMANDS - ID_COMMANDS - NO_NAME_COMMANDS
    assert not unclassified, f"classify these IMAP commands here: {sorted(k.__name__ for k in unclassified)}"


def test_jmap_no_oracle(world):
    store, client, bob, missing = world["store"], world["client"], world["bob_ids"], world["missing"]
    alice_account = ids.format_id(ids.ACCOUNT, world["alice"])
    before = (snapshot(store, world["alice"]), snapshot(store, world["bob"]))
    checked = 0
    for name in _registry(store):
        if name in NO_ID:
            continue
        for variant_bob, variant_missing in zip(cases_for(name, bob), cases_for(name, missing)):
            answers = []
            for args in (variant_bob, variant_missing):
                args = {"accountId": alice_account, **args}
                answers.append(client.api([[name, args, "c0"]], using=USING))
                assert snapshot(store, world["alice"]) == before[0], (name, args, answers[-1])
            assert _normal(answers[0], bob, missing) == _normal(answers[1], bob, missing), (name, variant_bob,
                                                                                            answers)
            checked += 1
    assert checked > 60
    assert (snapshot(store, world["alice"]), snapshot(store, world["bob"])) == before


def test_download_upload_no_oracle(world):
    client, bob, missing = world["client"], world["bob_ids"], world["missing"]
    alice_account = ids.format_id(ids.ACCOUNT, world["alice"])
    pairs = [(f"/jmap/download/{alice_account}/{bob['blob']}/x.eml", f"/jmap/download/{alice_account}/"
              f"{missing['blob']}/x.eml"),
             (f"/jmap/download/{bob['account']}/{bob['blob']}/x.eml",
              f"/jmap/download/{missing['account']}/{bob['blob']}/x.eml")]
    for a, b in pairs:
        ra, rb = client.request("GET", a), client.request("GET", b)
        assert (ra.code, _normal(ra.body.decode(), bob, missing)) == (rb.code, _normal(rb.body.decode(), bob, missing))
        assert ra.code == 404 or ra.code == 403
    ra = client.request("POST", f"/jmap/upload/{bob['account']}/", body=b"x")
    rb = client.request("POST", f"/jmap/upload/{missing['account']}/", body=b"x")
    assert (ra.code, _normal(ra.body.decode(), bob, missing)) == (rb.code, _normal(rb.body.decode(), bob, missing))
    assert ra.code >= 400


# -- IMAP ------------------------------------------------------------------------

NAME_COMMANDS = {c.Select, c.Examine, c.Create, c.Delete, c.Rename, c.Subscribe, c.Unsubscribe, c.List, c.Lsub,
                 c.Status, c.Append, c.Copy, c.Move, c.GetQuota, c.GetQuotaRoot, c.SetQuota, c.GetMetadata,
                 c.SetMetadata, c.Notify, c.Replace, c.GenUrlAuth, c.ResetKey, c.UrlFetch}
ID_COMMANDS = {c.Search, c.Sort, c.Thread, c.Fetch, c.Store}  # EMAILID/THREADID keys; UIDs are per mailbox
NO_NAME_COMMANDS = {c.Capability, c.Noop, c.Logout, c.Id, c.StartTLS, c.Authenticate, c.Login, c.Enable,
                    c.Namespace, c.Idle, c.GetJmapAccess, c.Check, c.Close, c.Unselect, c.Expunge,
                    c.Unauthenticate, c.CancelUpdate, c.Compress}

BOB_NAMES = ["BobSecret", "Other Users/bob@example.org/INBOX", "~bob@example.org/INBOX", "bob@example.org/INBOX",
             "#shared/BobSecret", "Other Users/bob@example.org"]
MISSING_NAMES = ["NoSuchBoxX", "Other Users/nob@example.org/INBOX", "~nob@example.org/INBOX",
                 "nob@example.org/INBOX", "#shared/NoSuchBoxX", "Other Users/nob@example.org"]


def _imap_commands(name: str, email_id: str, thread_id: str) -> list[str]:
    q = '"' + name + '"'
    url = f"imap://{quote(ALICE[0], safe='')}@localhost/{quote(name)}/;uid=1"
    return [f"SELECT {q}", f"EXAMINE {q}", f"STATUS {q} (MESSAGES UIDNEXT UNSEEN)", f"DELETE {q}",
            f"RENAME {q} \"Renamed\"", f"SUBSCRIBE {q}", f"UNSUBSCRIBE {q}", f"LIST \"\" {q}",
            f"LIST \"\" \"{name}*\"", f"LIST (SUBSCRIBED) \"\" {q}", f"LSUB \"\" {q}",
            f"APPEND {q} {{5+}}\r\nhello", f"CREATE {q}", f"DELETE {q}",
            "SELECT INBOX", f"COPY 1 {q}", f"UID COPY 1 {q}", f"MOVE 1 {q}",
            f"UID SEARCH EMAILID {email_id}", f"UID SEARCH THREADID {thread_id}",
            f"UID SORT (DATE) UTF-8 EMAILID {email_id}", f"UID THREAD REFERENCES UTF-8 THREADID {thread_id}",
            f"UID FETCH 1:* (FLAGS) ", f"SEARCH OR EMAILID {email_id} THREADID {thread_id}",
            f"REPLACE 1 {q} {{5+}}\r\nhello", "UNSELECT",
            f"GETQUOTA {q}", f'SETQUOTA {q} (STORAGE 1)', f"GETQUOTAROOT {q}",
            f"GETMETADATA {q} /private/comment", f'SETMETADATA {q} (/private/comment "x")',
            f"NOTIFY SET (MAILBOXES {q} (MessageNew MessageExpunge))", "NOTIFY NONE",
            f"RESETKEY {q}", f'GENURLAUTH "{url};urlauth=anonymous" INTERNAL',
            f'URLFETCH "{url};urlauth=anonymous:internal:{"0" * 64}"']


def test_imap_no_oracle(world):
    store = world["store"]
    bob, missing = world["bob_ids"], world["missing"]
    before = (snapshot(store, world["alice"]), snapshot(store, world["bob"]))
    for bob_name, missing_name in zip(BOB_NAMES, MISSING_NAMES):
        transcripts = []
        for name, email_id, thread_id in ((bob_name, bob[ids.EMAIL], bob[ids.THREAD]),
                                          (missing_name, missing[ids.EMAIL], missing[ids.THREAD])):
            imap = ImapClient(store)
            imap.send(f"a LOGIN {ALICE[0]} {ALICE[1]}\r\n")
            lines = []
            for i, command in enumerate(_imap_commands(name, email_id, thread_id)):
                out = imap.send(f"t{i} {command}\r\n")
                out = out.replace(quote(name), "<NAME>").replace(name, "<NAME>").replace(email_id, "<E>").replace(thread_id, "<T>")
                lines.append(re.sub(r"\[APPENDUID \d+ \d+\]|\[COPYUID [^\]]*\]|UIDVALIDITY \d+|MAILBOXID \(M\w+\)|UIDNEXT \d+|\* \d+ RECENT", "<UID>", out))
            transcripts.append(lines)
            imap.send("z LOGOUT\r\n")
        for command, a, b in zip(_imap_commands("<NAME>", "<E>", "<T>"), *transcripts):
            assert a == b, (command, a, b)
    after = (snapshot(store, world["alice"]), snapshot(store, world["bob"]))
    assert after[1] == before[1]  # bob's account untouched
