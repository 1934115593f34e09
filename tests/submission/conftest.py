"""Fixtures for the submission tests (helpers: submission_util.py; ``store``
is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.submission.submission_util import SubmissionClient, config


@pytest.fixture
def alice(store) -> int:
    return store.create_account("alice@example.org", "secret")


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(1_800_000_000)
    return clock


@pytest.fixture
def client(store, alice, clock) -> SubmissionClient:
    return SubmissionClient(store, clock, config())
