"""The failed-login backoff (dualmail.authguard): exponential per IP and per account,
capped, forgotten after the window, and never a lock-out (only failures wait)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from dualmail.authguard import AuthGuard, log_safe


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_exponential_per_ip_and_account_capped() -> None:
    clock = Clock()
    g = AuthGuard(clock, base=1.0, cap=8.0, window=60.0)
    assert [g.failure("192.0.2.1", "a@x", "imap", "PLAIN") for _ in range(5)] == [1, 2, 4, 8, 8]
    # another IP guessing the same account waits as long (per-account counter)
    assert g.failure("198.51.100.9", "A@X", "imap", "PLAIN") == 8
    # the first IP trying another account still waits (per-IP counter)
    assert g.failure("192.0.2.1", "b@x", "jmap", "basic") == 8
    # a fresh IP and a fresh account: the base delay
    assert g.failure("203.0.113.5", "c@x", "imap", "LOGIN") == 1


def test_success_clears_the_account_not_the_ip_and_window_forgets() -> None:
    clock = Clock()
    g = AuthGuard(clock, base=1.0, cap=30.0, window=60.0)
    for _ in range(3):
        g.failure("192.0.2.1", "a@x", "imap", "PLAIN")
    g.success("a@x")
    assert g.failure("198.51.100.9", "a@x", "imap", "PLAIN") == 1
    assert g.failure("192.0.2.1", "z@x", "imap", "PLAIN") == 8  # the IP's 4th failure
    clock.t += 61
    assert g.failure("192.0.2.1", "a@x", "imap", "PLAIN") == 1


def test_bounded_tables() -> None:
    g = AuthGuard(Clock(), max_entries=10)
    for i in range(100):
        g.failure(f"10.0.0.{i}", f"u{i}@x", "imap", "PLAIN")
    assert len(g._ip.entries) == 10 and len(g._account.entries) == 10


@given(st.text(max_size=300))
def test_log_safe_is_one_printable_token(text: str) -> None:
    out = log_safe(text)
    assert out and len(out) <= 128 * 10
    assert not any(ch.isspace() or not ch.isprintable() for ch in out)
