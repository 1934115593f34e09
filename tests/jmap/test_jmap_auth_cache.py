"""Issue 10: HTTP Basic cost argon2 (~30 ms CPU) on every JMAP request, and IMAP LOGIN
storms the same.  Now argon2 runs once per credentials (on a worker thread, never the
reactor's), later requests are answered from the credential cache, and a password change
makes the old password fail at once.  The real service on loopback."""

from __future__ import annotations

import base64
import imaplib
import json
import socket
import threading

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.store import store as store_module
from tests.imap.imap_e2e import PASSWORD, USER, running

pytestmark = pytest.mark.e2e


@pytest.fixture
def argon2_threads(monkeypatch) -> list[bool]:
    """One entry per argon2 check: was it on the main (reactor) thread?"""
    seen: list[bool] = []
    real = store_module.verify_password

    def recording(stored, password):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(stored, password)

    monkeypatch.setattr(store_module, "verify_password", recording)
    return seen


def _session_status(port: int, password: str) -> int:
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall((f"GET /jmap/session HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
                   "\r\n").encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    if status == 200:
        assert json.loads(data.partition(b"\r\n\r\n")[2])["username"] == USER
    return status


def _imap_logins(port: int, password: str, times: int) -> list[str]:
    out = []
    for _ in range(times):
        m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        try:
            out.append(m.login(USER, password)[0])
        except imaplib.IMAP4.error:
            out.append("NO")
        finally:
            m.shutdown()
    return out


@pytest_twisted.ensureDeferred
async def test_jmap_basic_runs_argon2_once(tmp_path, argon2_threads) -> None:
    async with running(tmp_path) as srv:
        [port] = await srv.service.bound_ports("jmap")
        jmap = port.getHost().port
        for _ in range(10):
            assert await deferToThread(_session_status, jmap, PASSWORD) == 200
        assert argon2_threads == [False]  # once, off the reactor thread
        # a password change makes the old one fail at once (no waiting for the cache)
        await deferToThread(srv.store.set_password, USER, "changed")
        assert await deferToThread(_session_status, jmap, PASSWORD) == 401
        assert await deferToThread(_session_status, jmap, "changed") == 200
        assert await deferToThread(_session_status, jmap, "changed") == 200
        assert argon2_threads == [False, False, False]


@pytest_twisted.ensureDeferred
async def test_imap_login_storm_runs_argon2_once(tmp_path, argon2_threads) -> None:
    async with running(tmp_path) as srv:
        assert await deferToThread(_imap_logins, srv.imap_port, PASSWORD, 10) == ["OK"] * 10
        assert argon2_threads == [False]
        await deferToThread(srv.store.set_password, USER, "changed")
        assert await deferToThread(_imap_logins, srv.imap_port, PASSWORD, 1) == ["NO"]
        assert await deferToThread(_imap_logins, srv.imap_port, "changed", 3) == ["OK"] * 3
        assert argon2_threads == [False, False, False]
