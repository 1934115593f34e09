"""``--store`` for twistd and the ``dualmail`` command, and ``$DUALMAIL_STORE`` (issue 18)."""

from __future__ import annotations

import pytest
from twisted.python import usage

from dualmail import cli
from dualmail.tap import Options


def test_twistd_store_option_and_environment(monkeypatch):
    monkeypatch.delenv("DUALMAIL_STORE", raising=False)
    o = Options()
    o.parseOptions([])
    assert o["store"] is None  # default unchanged: LMDB in --data
    o = Options()
    o.parseOptions(["--store", "postgresql://u@db/mail"])
    assert o["store"] == "postgresql://u@db/mail"
    monkeypatch.setenv("DUALMAIL_STORE", "postgresql://u@other/mail")
    o = Options()
    o.parseOptions([])
    assert o["store"] == "postgresql://u@other/mail"
    with pytest.raises(usage.UsageError, match="postgresql://"):
        Options().parseOptions(["--store", "/var/lib/dualmail"])


def test_every_cli_command_takes_store(pg_server, capsys, monkeypatch):
    monkeypatch.delenv("DUALMAIL_STORE", raising=False)
    url = pg_server.fresh_url("cli")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("pw\n"))
    assert cli.main(["--store", url, "user", "add", "a@x.org"]) == 0
    assert cli.main(["--store", url, "user", "list"]) == 0
    assert cli.main(["--store", url, "check"]) == 0
    monkeypatch.setenv("DUALMAIL_STORE", url)
    assert cli.main(["token", "create", "a@x.org"]) == 0
    out = capsys.readouterr().out
    assert "added a@x.org" in out and "a@x.org\n" in out and "a@x.org: ok" in out
