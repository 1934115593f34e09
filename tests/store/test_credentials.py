"""The credential cache (issue 10): argon2 once, then a keyed-hash lookup; a changed
password (in this process or by the CLI in another) is a miss at once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dualmail.store import store as store_module
from dualmail.store.credentials import CredentialCache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER, PASSWORD = "alice@example.org", "secret"


@pytest.fixture
def argon2_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = store_module.verify_password

    def counting(stored, password):
        calls.append(password)
        return real(stored, password)

    monkeypatch.setattr(store_module, "verify_password", counting)
    return calls


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_verified_once_then_looked_up(store, account, argon2_calls) -> None:
    cache = CredentialCache(store)
    assert cache.lookup(USER, PASSWORD) is None
    assert cache.verify(USER, PASSWORD) == account
    assert argon2_calls == [PASSWORD]
    for _ in range(20):
        assert cache.lookup(USER, PASSWORD) == account
    assert argon2_calls == [PASSWORD]  # no argon2 for the 20 others
    assert cache.lookup(USER, "wrong") is None and cache.lookup("bob@example.org", PASSWORD) is None


def test_failures_are_not_cached(store, account, argon2_calls) -> None:
    cache = CredentialCache(store)
    assert cache.verify(USER, "wrong") is None
    assert cache.verify(USER, "wrong") is None
    assert argon2_calls == ["wrong", "wrong"] and len(cache) == 0
    assert cache.verify("nobody@example.org", "x") is None and len(cache) == 0


def test_the_password_is_never_kept(store, account) -> None:
    cache = CredentialCache(store)
    cache.verify(USER, PASSWORD)
    [(key, value)] = cache._entries.items()
    assert len(key) == 32 and PASSWORD.encode() not in key  # HMAC-SHA256
    assert PASSWORD not in repr(value)
    other = CredentialCache(store)
    assert other._digest(USER, PASSWORD) != key  # a random key per cache (per process)


def test_entries_expire(store, account, argon2_calls) -> None:
    clock = Clock()
    cache = CredentialCache(store, ttl=60, now=clock)
    cache.verify(USER, PASSWORD)
    clock.t += 59
    assert cache.lookup(USER, PASSWORD) == account
    clock.t += 1
    assert cache.lookup(USER, PASSWORD) is None and len(cache) == 0


def test_size_is_bounded(store, account) -> None:
    cache = CredentialCache(store, max_entries=3)
    for _ in range(5):
        cache.verify(USER, PASSWORD)
    assert len(cache) == 1
    for i in range(5):
        cache._remember(cache._digest(USER, f"p{i}"), account, "h")
    assert len(cache) == 3


def test_a_password_change_in_this_process_is_a_miss(store, account) -> None:
    cache = CredentialCache(store)
    cache.verify(USER, PASSWORD)
    store.set_password(USER, "new")
    assert cache.lookup(USER, PASSWORD) is None
    assert cache.verify(USER, PASSWORD) is None
    assert cache.verify(USER, "new") == account and cache.lookup(USER, "new") == account


def test_deleted_account_is_a_miss(store, account) -> None:
    cache = CredentialCache(store)
    cache.verify(USER, PASSWORD)
    store.delete_account(USER)
    assert cache.lookup(USER, PASSWORD) is None


def test_a_password_changed_by_the_cli_in_another_process_is_a_miss(tmp_path, store, account) -> None:
    cache = CredentialCache(store)
    cache.verify(USER, PASSWORD)
    env = {**os.environ, "PYTHONPATH": ROOT}
    where = ["--store", store.test_target] if "://" in store.test_target else ["--data", store.test_target]
    subprocess.run([sys.executable, "-m", "dualmail.cli", *where, "user", "passwd", USER], input="changed\n", text=True, check=True, env=env,
                   capture_output=True)
    assert cache.lookup(USER, PASSWORD) is None
    assert cache.verify(USER, "changed") == account
