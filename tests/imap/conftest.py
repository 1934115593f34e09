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




# -- the end-to-end tests (marked e2e) run on both engines (issue 18) --------------------


def pytest_generate_tests(metafunc):
    if "imap_engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("e2e"):
        metafunc.parametrize("imap_engine", ["lmdb", "postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def imap_engine(request):
    import imap_e2e

    engine = getattr(request, "param", "lmdb")
    if engine == "postgresql":
        imap_e2e.STORE_URL_FACTORY = request.getfixturevalue("pg_server").fresh_url
    yield engine
    imap_e2e.STORE_URL_FACTORY = None
