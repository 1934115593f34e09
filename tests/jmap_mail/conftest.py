"""Fixtures for the JMAP Email/SearchSnippet tests (helpers: jmap_mail_util.py;
the ``store`` fixture is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.jmap.jmap_store_util import ALICE, Client


@pytest.fixture
def alice(store) -> int:
    return store.create_account(*ALICE)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(1_700_000_000)
    return clock


@pytest.fixture
def client(store, alice, clock) -> Client:
    return Client(store, clock)
