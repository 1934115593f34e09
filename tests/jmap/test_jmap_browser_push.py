"""A stock browser EventSource on the Session's eventSourceUrl, cross-origin.

Headless Chromium (Debian's ``chromium``, driven by Playwright's Python API) loads
a page served by the test from another loopback port (another origin), which does
``new EventSource(url)`` with the URL exactly as the Session hands it out (its
template filled in, nothing added): no Authorization header, no proxy. A change
made through IMAP, then one through JMAP, must each arrive as a StateChange.

The Chromium binary comes from Debian (``.ci/run`` installs it); Playwright's own
browser downloads are never used."""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.request
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.lmtp.lmtp_util import PASSWORD, USER, running

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
MAIL = "urn:ietf:params:jmap:mail"
TIMEOUT_MS = 15_000


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


PAGE = b"""<!doctype html><meta charset="utf-8"><title>push</title>
<script>
window.events = []; window.opened = false; window.errors = 0;
function listen(url) {
  const es = new EventSource(url);
  es.onopen = () => { window.opened = true; };
  es.onerror = () => { window.errors += 1; };
  es.addEventListener("state", (e) => { window.events.push(JSON.parse(e.data)); });
}
</script>"""


def jmap(port: int, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers={
        "Authorization": BASIC, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read())


@pytest_twisted.ensureDeferred
async def test_stock_eventsource_cross_origin_in_chromium(tmp_path):
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    from imapclient import IMAPClient
    from twisted.internet import endpoints, reactor
    from twisted.web import resource, server

    class Page(resource.Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return PAGE

    async with running(tmp_path) as srv:
        page_port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            server.Site(Page()))
        origin = f"http://127.0.0.1:{page_port.getHost().port}"
        try:
            def run() -> list[dict]:
                session = jmap(srv.jmap_port, "/jmap/session")
                account = session["primaryAccounts"][MAIL]
                url = session["eventSourceUrl"].format(types="*", closeafter="no", ping="0")
                assert origin not in url  # another origin (another port)
                with sync_api.sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=executable, headless=True)
                    try:
                        page = browser.new_page()
                        page.goto(origin + "/")
                        page.evaluate("(url) => listen(url)", url)
                        page.wait_for_function("window.opened", timeout=TIMEOUT_MS)
                        # a change through IMAP
                        imap = IMAPClient("127.0.0.1", srv.imap_port, ssl=False, timeout=15)
                        imap.login(USER, PASSWORD)
                        imap.append("INBOX", b"From: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
                        imap.logout()
                        page.wait_for_function("window.events.length >= 1", timeout=TIMEOUT_MS)
                        # a change through JMAP
                        jmap(srv.jmap_port, "/jmap/api", {"using": ["urn:ietf:params:jmap:core", MAIL],
                             "methodCalls": [["Mailbox/set", {"accountId": account,
                                                              "create": {"k": {"name": "FromJMAP"}}}, "0"]]})
                        page.wait_for_function(
                            "window.events.some(e => Object.keys(e.changed[Object.keys(e.changed)[0]])"
                            ".length == 1)", timeout=TIMEOUT_MS)
                        events: list[dict] = page.evaluate("window.events")
                        assert page.evaluate("window.errors") == 0
                        return [account, events]  # type: ignore[list-item]
                    finally:
                        browser.close()

            account, events = await deferToThread(run)
        finally:
            await page_port.stopListening()
    first = events[0]
    assert first["@type"] == "StateChange"
    assert {"Email", "Mailbox", "Thread"} <= set(first["changed"][account])  # the APPEND
    assert events[-1]["changed"][account].keys() == {"Mailbox"}  # the Mailbox/set
    assert int(events[-1]["changed"][account]["Mailbox"]) > int(first["changed"][account]["Email"])
