"""IMAP QUOTA (RFC 9208) over the sans-I/O session: GETQUOTA, GETQUOTAROOT, SETQUOTA,
STATUS DELETED / DELETED-STORAGE, and NO [OVERQUOTA] with nothing changed."""

from __future__ import annotations

import re
from typing import Any

from imap_util import USER, Client, deliver, message


def snapshot(store: Any, account: int) -> Any:
    with store.read(account) as v:
        return (v.highest_modseq, v.usage(),
                sorted((m["id"], m["uidnext"], tuple(sorted(m["counts"].items()))) for m in v.mailboxes()))


def tagged(out: str, tag: str) -> str:
    m = re.search(rf"^{re.escape(tag)} (.*?)\r?$", out, re.M)
    assert m, out
    return m.group(1)


def test_capabilities_after_login(client: Client) -> None:
    caps = client.ok("c CAPABILITY")
    for cap in ("QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"):
        assert f" {cap} " in caps or caps.split("\r\n")[0].endswith(cap)
    assert "QUOTASET" not in caps  # RFC 9208 §4.1.3: SETQUOTA is the admin's


def test_no_limits_is_an_empty_resource_list(client: Client) -> None:
    """RFC 9208 §4.2.1: resources not named are not limited; an empty list means none."""
    out = client.ok("q GETQUOTAROOT INBOX")
    assert '* QUOTAROOT INBOX ""\r\n' in out
    assert '* QUOTA "" ()\r\n' in out
    assert '* QUOTA "" ()\r\n' in client.ok('q GETQUOTA ""')


def test_usage_in_kib_and_messages(store, account, client: Client) -> None:
    raw = message(body="x" * 3000 + "\r\n")
    deliver(store, account, raw=raw)
    deliver(store, account, raw=raw)
    store.set_quota(USER, {"octets": 10 * 1024 * 1024, "count": 100})
    out = client.ok('q GETQUOTA ""')
    kib = -(-2 * len(raw) // 1024)  # rounded up: units of 1024 octets (RFC 9208 §5.1)
    assert f'* QUOTA "" (STORAGE {kib} 10240 MESSAGE 2 100)\r\n' in out
    # §4.1.2: the mailbox need not exist
    out = client.ok("q GETQUOTAROOT Nonexistent/Child")
    assert '* QUOTAROOT Nonexistent/Child ""' in out and "STORAGE" in out


def test_unknown_root_and_bad_syntax(store, account, client: Client) -> None:
    before = snapshot(store, account)
    assert tagged(client.cmd("q GETQUOTA #user/bob"), "q").startswith("NO [NONEXISTENT]")
    assert tagged(client.cmd("q GETQUOTA"), "q").startswith("BAD")
    assert tagged(client.cmd("q GETQUOTAROOT"), "q").startswith("BAD")
    assert tagged(client.cmd('q SETQUOTA "" (STORAGE)'), "q").startswith("BAD")
    assert tagged(client.cmd('q SETQUOTA "" STORAGE 1'), "q").startswith("BAD")
    assert snapshot(store, account) == before


def test_setquota_is_refused_for_a_user(store, account, client: Client) -> None:
    """RFC 9208 §4.1.3: NO when the limit can't be set; the limits stay."""
    store.set_quota(USER, {"count": 5})
    before = snapshot(store, account)
    out = client.cmd('q SETQUOTA "" (STORAGE 512)')
    assert tagged(out, "q").startswith("NO [NOPERM]")
    out = client.cmd('q SETQUOTA "" ()')
    assert tagged(out, "q").startswith("NO [NOPERM]")
    assert snapshot(store, account) == before
    with store.read(account) as v:
        assert v.quota_limits() == {"count": 5}


def test_quota_commands_need_authentication(store, account) -> None:
    c = Client(store)
    assert tagged(c.cmd('q GETQUOTA ""'), "q").startswith("BAD")


def test_append_over_quota_is_no_overquota_and_changes_nothing(store, account, client: Client) -> None:
    """RFC 9208 §4.3.1: tagged NO [OVERQUOTA] to the APPEND that would exceed a limit."""
    deliver(store, account)
    store.set_quota(USER, {"count": 1})
    before = snapshot(store, account)
    raw = message("over")
    out = client.send(f"a APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    assert tagged(out, "a").startswith("NO [OVERQUOTA]")
    assert snapshot(store, account) == before
    store.set_quota(USER, {"count": None, "octets": 100})
    out = client.send(f"b APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    assert tagged(out, "b").startswith("NO [OVERQUOTA]")
    store.set_quota(USER, {"octets": None})
    client.send(f"c APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")


def test_copy_shares_the_email_so_only_a_copy_onto_itself_counts(store, account, client: Client) -> None:
    """COPY to another mailbox adds a membership of the same Email (CONTRACT §2): usage is
    unchanged, so it succeeds at the limit; COPY into the same mailbox makes a second
    Email and is refused with OVERQUOTA (RFC 9208 §4.3.1) without a change."""
    deliver(store, account)
    store.set_quota(USER, {"count": 1})
    client.ok("s SELECT INBOX")
    out = client.ok("c COPY 1 Archive")
    assert "COPYUID" in out
    before = snapshot(store, account)
    assert tagged(client.cmd("d COPY 1 INBOX"), "d").startswith("NO [OVERQUOTA]")
    assert snapshot(store, account) == before
    out = client.ok("m MOVE 1 Trash")  # MOVE never adds an Email
    with store.read(account) as v:
        assert v.usage()["count"] == 1


def test_status_deleted_and_deleted_storage(store, account, client: Client) -> None:
    """RFC 9208 §4.1.4: DELETED = messages with \\Deleted; DELETED-STORAGE = what an
    EXPUNGE would free (here the sum of their RFC822.SIZE, which the RFC allows)."""
    small, big = message("a", "x\r\n"), message("b", "y" * 500 + "\r\n")
    deliver(store, account, raw=small)
    deliver(store, account, raw=big)
    client.ok("s SELECT INBOX")
    client.ok("t STORE 2 +FLAGS.SILENT (\\Deleted)")
    out = client.ok("u STATUS INBOX (MESSAGES DELETED DELETED-STORAGE SIZE)")
    assert f"* STATUS \"INBOX\" (MESSAGES 2 DELETED 1 DELETED-STORAGE {len(big)} SIZE {len(small) + len(big)})" in out
    client.ok("e EXPUNGE")
    out = client.ok("u STATUS INBOX (DELETED DELETED-STORAGE)")
    assert "* STATUS \"INBOX\" (DELETED 0 DELETED-STORAGE 0)" in out


def test_replace_at_the_limit_counts_only_the_net_change(store, account, client: Client) -> None:
    """RFC 8508 §3.4: REPLACE's quota is evaluated with the replaced message already gone."""
    deliver(store, account)
    store.set_quota(USER, {"count": 1})
    client.ok("s SELECT INBOX")
    raw = message("revised")
    out = client.send(f"r REPLACE 1 INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    assert tagged(out, "r").startswith("OK"), out
    with store.read(account) as v:
        assert v.usage()["count"] == 1
    big = message("too big", "z" * 5000 + "\r\n")
    store.set_quota(USER, {"count": None, "octets": 2000})
    before = snapshot(store, account)
    out = client.send(f"q REPLACE 1 INBOX {{{len(big)}+}}\r\n".encode() + big + b"\r\n")
    assert tagged(out, "q").startswith("NO [OVERQUOTA]")
    assert snapshot(store, account) == before
