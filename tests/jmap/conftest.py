"""Fixtures for the store-backed JMAP tests (helpers: jmap_store_util.py).
The ``store`` fixture (a fresh LMDB store in tmp_path) is in tests/conftest.py."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.jmap.jmap_store_util import ALICE, BOB, Client


@pytest.fixture
def alice(store) -> int:
    return store.create_account(*ALICE)


@pytest.fixture
def bob(store) -> int:
    return store.create_account(*BOB)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(store, alice, clock) -> Client:
    return Client(store, clock)
