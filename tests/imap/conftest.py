"""IMAP test fixtures (helpers live in imap_util.py)."""

from __future__ import annotations

from typing import Any

import pytest

from imap_util import PASSWORD, USER, Client


@pytest.fixture
def account(store: Any) -> int:
    return store.create_account(USER, PASSWORD)


@pytest.fixture
def client(store: Any, account: int) -> Client:
    c = Client(store)
    c.login()
    return c


