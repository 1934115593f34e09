"""End to end: the real service (``tap.makeService``) on an OS-chosen loopback
port with TLS, driven by a real JMAP client from PyPI (jmapc, synchronous, so
in a thread) doing what a mail client does: list mailboxes, query the inbox
newest first, get threads and emails with bodies, mark read, move to Trash,
save a draft; then the store (what IMAP serves) is checked."""

from __future__ import annotations

import pytest
import pytest_twisted

from dualmail.mail.ops import deliver, imap_flags
from dualmail.model import ids
from dualmail.store.store import open_store
from tests.conftest import store_target

pytestmark = pytest.mark.e2e


def _message(subject: str, message_id: str, extra: str = "") -> bytes:
    return (f"From: Bob <bob@example.com>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Body of {subject}.\r\n").encode()


@pytest.mark.parametrize("engine", ["lmdb", "postgresql"])
@pytest_twisted.ensureDeferred
async def test_jmapc_mail_client(tmp_path, engine, request):
    jmapc = pytest.importorskip("jmapc")
    pytest.importorskip("trustme")
    from twisted.internet.threads import deferToThread

    from tests.conftest import write_tls_files

    key_pem, cert_pem, ca_pem = write_tls_files(tmp_path)

    data = store_target(engine, tmp_path, request)  # LMDB directory or PostgreSQL URL
    setup = open_store(data, sync=False)
    alice = setup.create_account("alice@example.org", "secret")
    first, _ = deliver(setup, alice, _message("Lunch", "l1@x"), 1, received=1_700_000_000)
    reply, _ = deliver(setup, alice, _message("Re: Lunch", "l2@x", "In-Reply-To: <l1@x>\r\n"), 1,
                       received=1_700_000_200)
    other, _ = deliver(setup, alice, _message("Invoice", "i1@x"), 1, received=1_700_000_100)
    setup.close()

    from tests.conftest import start_jmap_over_tls

    service, host = await start_jmap_over_tls(data, key_pem, cert_pem)
    try:

        def run() -> dict:
            from jmapc import (Comparator, Email, EmailAddress, EmailBodyPart, EmailBodyValue,
                               EmailQueryFilterCondition, Ref)
            from jmapc.methods import EmailGet, EmailQuery, EmailSet, MailboxGet, ThreadGet

            client = jmapc.Client.create_with_password(host=host, user="alice@example.org", password="secret")
            client.requests_session.trust_env = False
            client.requests_session.verify = str(ca_pem)
            out: dict = {}
            try:
                boxes = client.request(MailboxGet(ids=None))
                roles = {m.role: m.id for m in boxes.data if m.role}
                out["boxes"] = {m.name: (m.total_emails, m.unread_emails) for m in boxes.data}
                results = client.request([
                    EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=roles["inbox"]),
                               sort=[Comparator(property="receivedAt", is_ascending=False)],
                               collapse_threads=True, limit=50),
                    EmailGet(ids=Ref("/ids"), properties=["threadId", "subject", "from", "preview"]),
                    ThreadGet(ids=Ref("/list/*/threadId")),
                    EmailGet(ids=Ref("/list/*/emailIds"),
                             properties=["subject", "keywords", "mailboxIds", "textBody", "bodyValues"],
                             fetch_text_body_values=True),
                ])
                out["query"] = results[0].response.ids
                out["threads"] = [t.email_ids for t in results[2].response.data]
                out["bodies"] = {e.subject: e.body_values[e.text_body[0].part_id].value
                                 for e in results[3].response.data}
                target = out["query"][0]
                marked = client.request(EmailSet(update={target: {"keywords/$seen": True}}))
                moved = client.request(EmailSet(update={out["query"][1]: {"mailboxIds": {roles["trash"]: True}}}))
                draft = client.request(EmailSet(create={"d": Email(
                    mailbox_ids={roles["drafts"]: True}, keywords={"$draft": True, "$seen": True},
                    mail_from=[EmailAddress(name="Alice", email="alice@example.org")],
                    to=[EmailAddress(name="Bob", email="bob@example.com")], subject="Re: Lunch",
                    text_body=[EmailBodyPart(part_id="t", type="text/plain")],
                    body_values={"t": EmailBodyValue(value="Yes, noon.")})}))
                out["marked"] = marked.updated
                out["moved"] = moved.updated
                out["draft"] = draft.created["d"].id if draft.created else draft
                check = client.request(EmailGet(ids=[out["draft"]], properties=["subject", "bodyValues", "to"],
                                                fetch_all_body_values=True))
                out["draft_get"] = check.data[0]
            finally:
                client.requests_session.close()
            return out

        out = await deferToThread(run)
        wire = {e: ids.format_id(ids.EMAIL, e) for e in (first, reply, other)}
        assert out["boxes"]["INBOX"] == (3, 3)
        assert out["query"] == [wire[reply], wire[other]]  # newest first, one per thread
        assert sorted(out["threads"]) == sorted([[wire[first], wire[reply]], [wire[other]]])
        assert out["bodies"]["Re: Lunch"] == "Body of Re: Lunch.\n"
        assert out["marked"] == {wire[reply]: None} and out["moved"] == {wire[other]: None}
        assert out["draft_get"].subject == "Re: Lunch"
        assert list(out["draft_get"].body_values.values())[0].value == "Yes, noon."

        with service.store.read(alice) as r:  # what IMAP serves
            assert imap_flags(r.email(reply), 1) == ["\\Seen"]
            assert other not in [e for _u, e in r.uid_items(1)]
            assert [e for _u, e in r.uid_items(4)] == [other]  # Trash
            draft = ids.parse_id(ids.EMAIL, out["draft"])
            assert sorted(imap_flags(r.email(draft), 2)) == ["\\Draft", "\\Seen"]
            assert b"Subject: Re: Lunch" in r.raw_message(draft)
    finally:
        await service.stopService()
