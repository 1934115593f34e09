"""Start the real service (``tap.makeService``) on loopback ports chosen by the OS."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from dualmail.store.store import Store, open_store
from dualmail.tap import Options, makeService

USER = "alice@example.org"
PASSWORD = "secret"
# Set by tests/imap/conftest.py for the PostgreSQL run of an e2e test: () -> a store URL.
STORE_URL_FACTORY: Callable[[], str] | None = None


@dataclass
class Running:
    service: Any
    store: Store
    account: int
    imap_port: int
    imaps_port: int | None
    data: str


@asynccontextmanager
async def running(tmp_path: Any, *extra: str, imaps: bool = False) -> AsyncIterator[Running]:
    from twisted.internet import reactor

    data = str(tmp_path / "data")
    if STORE_URL_FACTORY is not None:  # on PostgreSQL (``--data`` takes a URL too)
        data = STORE_URL_FACTORY()
    setup = open_store(data, sync=False)
    setup.create_account(USER, PASSWORD)
    setup.close()
    args = ["--data", data, "--imap", "tcp:0:interface=127.0.0.1",
            "--jmap", "tcp:0:interface=127.0.0.1", "--no-first-account", *extra]
    if imaps:
        args += ["--imaps", "tcp:0:interface=127.0.0.1"]
    options = Options()
    options.parseOptions(args)
    service = makeService(options, reactor)
    service.startService()
    try:
        [port] = await service.bound_ports("imap")
        imaps_port = None
        if imaps:
            [p2] = await service.bound_ports("imaps")
            imaps_port = p2.getHost().port
        store = service.store
        yield Running(service, store, store.account_id(USER), port.getHost().port, imaps_port, data)
    finally:
        await service.stopService()


class Gate:
    """Wraps ``real`` so that a call blocks until the test calls ``release()`` (a bounded
    wait): a test can then check that the server answers others while the work waits.
    ``outcome`` says whether the call ran on the main (reactor) thread and whether the
    release came in time -- a stalled reactor can never release it, so the wait runs out."""

    def __init__(self, real: Any, timeout: float = 20.0) -> None:
        import threading

        self.real = real
        self.timeout = timeout
        self.started = threading.Event()
        self._release = threading.Event()
        self.outcome: dict[str, bool] = {}

    def __call__(self, *args: Any, **kw: Any) -> Any:
        import threading

        if threading.current_thread() is threading.main_thread():
            self.outcome["on_reactor"] = True
        self.started.set()
        self.outcome["released"] = self._release.wait(self.timeout)
        return self.real(*args, **kw)

    def release(self) -> None:
        self._release.set()


def raw_selected(port: int) -> tuple[Any, Any]:
    """A raw socket logged in with INBOX selected, and its line reader (timeouts bound
    every read); the caller closes the socket."""
    import socket

    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")
    f.readline()  # greeting
    s.sendall(f"l LOGIN {USER} {PASSWORD}\r\nm SELECT INBOX\r\n".encode())
    while not f.readline().startswith(b"m "):
        pass
    return s, f


def logged_in_pair(port: int) -> tuple[Any, Any]:
    """Two imaplib clients logged in to the same account (the caller logs them out)."""
    import imaplib

    a = imaplib.IMAP4("127.0.0.1", port)
    b = imaplib.IMAP4("127.0.0.1", port)
    a.login(USER, PASSWORD)
    b.login(USER, PASSWORD)
    return a, b
