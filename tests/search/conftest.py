"""Fixtures of the search tests (helpers and the corpus are in corpus.py)."""

from __future__ import annotations

import pytest

from tests.search.corpus import load


@pytest.fixture
def corpus(store, account):
    return load(store, account)
