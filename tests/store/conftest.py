"""The store tests run on both engines: LMDB and PostgreSQL (issue 18)."""

from __future__ import annotations

import pytest

from dualmail.store.store import open_store
from tests.conftest import store_target


@pytest.fixture(params=["lmdb", "postgresql"])
def engine(request) -> str:
    return request.param


@pytest.fixture
def store(engine, tmp_path, request):
    target = store_target(engine, tmp_path, request)
    s = open_store(target, sync=False)
    s.test_target = target  # where it lives: a tests may hand it to the CLI (--data/--store)
    yield s
    s.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    """pytest-twisted replaces a hypothesis test's ``inner_test`` with a wrapper for good,
    so the second parametrization of one function would wrap it twice (and fail with
    "blockon cannot be called from the twisted greenlet"): put the original back."""
    hyp = getattr(pyfuncitem.obj, "hypothesis", None)
    original = getattr(hyp, "inner_test", None)
    yield
    if hyp is not None:
        hyp.inner_test = original
