"""Every cross-protocol end-to-end test runs on both engines: LMDB and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.cross import cross_util


@pytest.fixture(params=["lmdb", "postgresql"], autouse=True)
def engine(request):
    if request.param == "postgresql":
        cross_util.STORE_URL_FACTORY = request.getfixturevalue("pg_server").fresh_url
    yield request.param
    cross_util.STORE_URL_FACTORY = None
