"""bench/mailgen.py: determinism and realism of the generated mail."""

import email
import email.policy
import io
import statistics
import subprocess
import sys
from pathlib import Path

import mailgen

from dualmail.importer.sources import detect, iter_maildir, iter_mbox

MAILGEN = Path(mailgen.__file__)


def test_deterministic():
    a = list(mailgen.generate(50, seed=42))
    assert a == list(mailgen.generate(50, seed=42))
    assert a != list(mailgen.generate(50, seed=43))
    assert a == [r.raw for r in mailgen.generate_records(50, seed=42)]


def test_realism():
    recs = list(mailgen.generate_records(2000, seed=1))
    raws = [r.raw for r in recs]
    assert all(b"\n" not in r.replace(b"\r\n", b"") for r in raws)  # CRLF only
    sizes = sorted(len(r) for r in raws)
    assert sizes[0] >= 1000 and sizes[-1] <= 2_000_000
    assert 3500 <= statistics.median(sizes) <= 7500
    assert sizes[int(len(sizes) * 0.99)] > 40_000  # heavy tail
    replies = sum(b"\r\nIn-Reply-To: " in r for r in raws)
    assert 0.25 < replies / len(raws) < 0.35
    assert any(r.count(b"\r\n <") >= 3 for r in raws)  # deep References
    for needle in (b"=?UTF-8?B?", b"=?ISO-8859-1?Q?", b"multipart/alternative",
                   b"multipart/mixed", b"Content-Transfer-Encoding: base64",
                   b"List-Id: ", b'charset="koi8-r"', b'charset="windows-1252"',
                   b'charset="iso-8859-1"', b'charset="iso-2022-jp"', b'charset="shift_jis"',
                   b"\r\nFrom ", b"\r\n>From "):
        assert any(needle in r for r in raws), needle
    years = {int(email.message_from_bytes(r)["Date"].split()[3]) for r in raws}
    assert len(years) >= 8  # spread over 2016..2024
    ids = [email.message_from_bytes(r)["Message-ID"] for r in raws]
    assert len(set(ids)) == len(ids)


def test_parses_cleanly():
    for raw in mailgen.generate(300, seed=9):
        m = email.message_from_bytes(raw, policy=email.policy.default)
        str(m["subject"]), str(m["from"])
        for part in m.walk():
            assert not part.defects, (part.defects, raw[:300])
            if part.get_content_maintype() == "text":
                part.get_content()  # decodes in its declared charset


def test_cli(tmp_path):
    mbox = tmp_path / "out.mbox"
    maildir = tmp_path / "md"
    for args in (["--mbox", str(mbox)], ["--maildir", str(maildir)]):
        res = subprocess.run([sys.executable, str(MAILGEN), "--count", "120", "--seed", "4", *args],
                             capture_output=True, text=True, check=True)
        assert "wrote 120 messages" in res.stdout
    assert detect(mbox) == "mbox" and detect(maildir) == "maildir"
    assert len(list(iter_mbox(mbox))) == 120
    assert len(list(iter_maildir(maildir))) == 120
    buf = io.BytesIO()
    mailgen.write_mbox(buf, mailgen.generate_records(120, seed=4))
    assert mbox.read_bytes() == buf.getvalue()
    assert b"\nStatus: RO\n" in buf.getvalue() and b"\nX-Status: " in buf.getvalue()
