"""Where the VAPID key lives (RFC 9749 §4: the advertised key signs): a file in the
LMDB data directory; in the store itself on a shared PostgreSQL store, so every node
advertises and signs with the same key."""

from __future__ import annotations

import os

import pytest
from twisted.internet.task import Clock

from dualmail.jmap.service import VAPID_FILE, make_push
from dualmail.store.store import open_store
from tests.conftest import store_target


@pytest.mark.parametrize("engine", ["lmdb", "postgresql"])
def test_one_key_per_store(tmp_path, engine, request):
    target = store_target(engine, tmp_path, request)
    store = open_store(target, sync=False)
    try:
        one, config = make_push(store, {"data": target}, Clock())
        two, _ = make_push(store, {"data": target}, Clock())
        assert one.vapid.application_server_key == two.vapid.application_server_key
        assert config.vapid_fingerprint == one.vapid.fingerprint
        if engine == "lmdb":
            assert os.path.exists(os.path.join(target, VAPID_FILE))
        else:
            assert not os.path.exists(target)  # a URL is not a directory to write into
            with store.kv.read() as r:
                assert r.get("meta", b"vapid_key") is not None
    finally:
        store.close()


def test_no_data_directory_no_key(store):
    runner, config = make_push(store, {}, Clock())
    assert runner.vapid is None and config.vapid_fingerprint is None
