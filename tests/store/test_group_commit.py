"""Group commit (``Store.write_grouped``): concurrent writers of one account and of several
accounts share one synced transaction; each account takes its modseq once per transaction
(CONTRACT, store rules); a failing writer fails alone; nothing returns before its commit.

Runs on both engines: on PostgreSQL (no transaction spanning accounts) every call is its
own transaction, with the same results.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dualmail.mail.ops import prepare, store_prepared
from dualmail.model import errors

N = 8


def _msg(i: int) -> bytes:
    return (f"From: a@example.org\r\nSubject: group {i}\r\nMessage-ID: <g{i}@example.org>\r\n\r\n"
            f"body {i}\r\n").encode()


def _inbox(store: Any, a: int) -> int:
    with store.read(a) as v:
        return v.mailbox_by_path(["INBOX"])


def test_concurrent_writers_share_one_transaction(store: Any, engine: str) -> None:
    accounts = [store.create_account(f"u{k}@example.org", "pw") for k in range(2)]
    boxes = {a: _inbox(store, a) for a in accounts}
    queued = threading.Event()
    results: dict[int, Any] = {}
    errs: list[BaseException] = []

    def first(tx: Any) -> tuple[int, int]:
        # the leader's own write holds the group open until the others have queued
        deadline = time.monotonic() + 10
        while len(store._group_queue) < N - 1 and time.monotonic() < deadline and \
                getattr(store.kv, "group_commit", False):
            queued.wait(0.01)
        e, uids = store_prepared(tx, prepare(_msg(0), [], 1_700_000_000), [boxes[accounts[0]]])
        return tx.modseq, uids[boxes[accounts[0]]]

    def later(i: int) -> Any:
        a = accounts[i % 2]

        def fn(tx: Any) -> tuple[int, int]:
            e, uids = store_prepared(tx, prepare(_msg(i), [], 1_700_000_000 + i), [boxes[a]])
            return tx.modseq, uids[boxes[a]]
        return a, fn

    def run(i: int) -> None:
        try:
            if i == 0:
                results[i] = (accounts[0], store.write_grouped(accounts[0], first))
            else:
                a, fn = later(i)
                results[i] = (a, store.write_grouped(a, fn))
        except BaseException as e:  # reported below
            errs.append(e)

    t0 = threading.Thread(target=run, args=(0,))
    t0.start()
    deadline = time.monotonic() + 10
    while not store._group_busy and time.monotonic() < deadline and getattr(store.kv, "group_commit", False):
        time.sleep(0.001)  # polling a condition, bounded
    threads = [threading.Thread(target=run, args=(i,)) for i in range(1, N)]
    for t in threads:
        t.start()
    for t in [t0, *threads]:
        t.join(30)
    assert not errs
    assert len(results) == N
    for a in accounts:
        uids = sorted(u for acc, (_ms, u) in results.values() if acc == a)
        assert uids == list(range(1, len(uids) + 1))  # every UID once, none lost
        with store.read(a) as v:
            assert list(v.uids(boxes[a])) == uids
            assert v.highest_modseq == max(ms for acc, (ms, _u) in results.values() if acc == a)
    if engine == "lmdb":
        # the 7 later writers committed together: one modseq per account for all of them
        for a in accounts:
            later_ms = {ms for i, (acc, (ms, _u)) in results.items() if acc == a and i}
            assert len(later_ms) == 1


def test_a_failing_writer_fails_alone(store: Any) -> None:
    a = store.create_account("u@example.org", "pw")
    box = _inbox(store, a)
    out: dict[int, Any] = {}
    gate = threading.Event()

    def good(i: int) -> Any:
        def fn(tx: Any) -> int:
            if i == 0:
                gate.wait(5)  # hold the first group while the others queue
            _e, uids = store_prepared(tx, prepare(_msg(i), [], 1_700_000_000), [box])
            return uids[box]
        return fn

    def bad(tx: Any) -> int:
        store_prepared(tx, prepare(_msg(99), [], 1_700_000_000), [box])
        raise errors.NotFoundError("no such mailbox")

    def run(i: int, fn: Any) -> None:
        try:
            out[i] = store.write_grouped(a, fn)
        except errors.NotFoundError as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(0, good(0)))]
    threads[0].start()
    threads += [threading.Thread(target=run, args=(i, good(i) if i != 2 else bad)) for i in (1, 2, 3)]
    for t in threads[1:]:
        t.start()
    time.sleep(0.05)  # let them queue behind the held group (not a timing assertion)
    gate.set()
    for t in threads:
        t.join(30)
    assert isinstance(out[2], errors.NotFoundError)
    assert sorted(out[i] for i in (0, 1, 3)) == [1, 2, 3]
    with store.read(a) as v:
        assert list(v.uids(box)) == [1, 2, 3]  # the failed writer's message is not there


def test_the_commit_is_published_by_poll_external(store: Any) -> None:
    a = store.create_account("u@example.org", "pw")
    box = _inbox(store, a)
    seen: list[Any] = []
    store.subscribe(seen.append)
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(store.write_grouped(
        a, lambda tx: store_prepared(tx, prepare(_msg(1), [], 1_700_000_000), [box]))))
    t.start()
    t.join(30)
    assert result and seen == []  # not published on the writer's thread
    store.poll_external()
    assert [c.account for c in seen] == [a] and box in seen[0].mailboxes


def test_alone_says_whether_another_call_of_the_account_shared_the_transaction(store: Any,
                                                                               engine: str) -> None:
    """``write_grouped_alone``: two calls of account a in one group share one MailTxn and
    so one modseq (alone False for both); account b's call in the same group is alone."""
    a, b = (store.create_account(f"{n}@example.org", "pw") for n in "ab")
    boxes = {x: _inbox(store, x) for x in (a, b)}
    gate = threading.Event()
    out: dict[int, Any] = {}

    def job(i: int, acc: int) -> None:
        def fn(tx: Any) -> int:
            if i == 0:
                gate.wait(10)  # hold the first group while the others queue
            store_prepared(tx, prepare(_msg(i), [], 1_700_000_000), [boxes[acc]])
            return tx.modseq
        out[i] = (acc, *store.write_grouped_alone(acc, fn))

    first = threading.Thread(target=job, args=(0, a))
    first.start()
    deadline = time.monotonic() + 10
    grouping = getattr(store.kv, "group_commit", False)
    while grouping and not store._group_busy and time.monotonic() < deadline:
        time.sleep(0.001)  # polling a condition, bounded
    rest = [threading.Thread(target=job, args=(i, acc)) for i, acc in ((1, a), (2, a), (3, b))]
    for t in rest:
        t.start()
    while grouping and len(store._group_queue) < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.set()
    for t in [first, *rest]:
        t.join(30)
    assert out[0][2] is True  # alone in its own group
    if grouping:
        assert out[1][2] is False and out[2][2] is False and out[1][1] == out[2][1]
    else:  # PostgreSQL: every call its own transaction, its own modseq
        assert out[1][2] is True and out[2][2] is True and out[1][1] != out[2][1]
    assert out[3][2] is True
