"""``Store.path_ids`` (2026-12-07): the ids along a mailbox path, remembered so that a
lookup by path is one ``get_many`` of the records (one round trip on PostgreSQL) instead
of a lookup per level and a record read.  Only a hint, checked against each read view:
a rename, a move, a delete or a new mailbox under an old name is never missed.  Runs on
both engines."""

from __future__ import annotations

import pytest

from tests.conftest import open_test_store


@pytest.fixture(params=["lmdb", "postgresql"])
def store(request, tmp_path):
    s = open_test_store(request.param, tmp_path, request)
    yield s
    s.close()


def _find(store, a, path):
    with store.read(a) as v:
        return v.mailbox_by_path(path)


def test_remembered_paths_follow_renames_moves_and_deletes(store):
    a = store.create_account("alice@example.org", "pw")
    with store.write(a) as tx:
        work = tx.create_mailbox("Work")
        old = tx.create_mailbox("Old", work)
        other = tx.create_mailbox("Other")
    assert _find(store, a, ["Work", "Old"]) == old
    assert store.path_ids.get(a, ["Work", "Old"]) == [work, old]
    assert _find(store, a, ["Work", "Old"]) == old  # from the remembered ids
    assert _find(store, a, ["inbox"]) == _find(store, a, ["INBOX"])  # any case, as child() finds it

    with store.write(a) as tx:
        tx.update_mailbox(old, name="Archive")
    assert _find(store, a, ["Work", "Old"]) is None  # renamed: not found under its old name
    assert _find(store, a, ["Work", "Archive"]) == old

    with store.write(a) as tx:
        tx.update_mailbox(old, parent=other)
    assert _find(store, a, ["Work", "Archive"]) is None  # moved
    assert _find(store, a, ["Other", "Archive"]) == old

    with store.write(a) as tx:
        again = tx.create_mailbox("Archive", work)  # a new mailbox under the old path
    assert _find(store, a, ["Work", "Archive"]) == again != old

    with store.write(a) as tx:
        tx.delete_mailbox(again, remove_emails=True)
    assert _find(store, a, ["Work", "Archive"]) is None


def test_remembered_paths_are_per_account(store):
    a = store.create_account("alice@example.org", "pw")
    b = store.create_account("bob@example.org", "pw")
    with store.write(a) as tx:
        ma = tx.create_mailbox("Shared name")
    assert _find(store, a, ["Shared name"]) == ma
    assert _find(store, b, ["Shared name"]) is None
    with store.write(b) as tx:
        mb = tx.create_mailbox("Shared name")
    assert _find(store, b, ["Shared name"]) == mb and _find(store, a, ["Shared name"]) == ma
