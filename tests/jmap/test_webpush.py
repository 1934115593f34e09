"""Web Push messages, sans I/O (``dualmail.push.webpush``): URL and key
checks, RFC 8291 encryption (its §5 test vector), VAPID (RFC 8292)."""

from __future__ import annotations

import base64
import json
import os
import stat

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings, strategies as st

RELAXED = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
from py_vapid import Vapid02

from dualmail.push import webpush
from tests.jmap.push_util import UserAgent


def d64(text: str) -> bytes:
    return webpush.b64url_decode(text.replace(" ", ""))


def test_rfc8291_section5_example_is_reproduced():
    # RFC 8291 §5 / Appendix A: fixed sender key and salt give the published body
    sender = ec.derive_private_key(int.from_bytes(d64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"), "big"),
                                   ec.SECP256R1())
    keys = webpush.Keys(d64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcx aOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
                        d64("BTBZMqHH6r4Tts7J_aSIgg"))
    body = webpush.encrypt(b"When I grow up, I want to be a watermelon", keys, ephemeral=sender,
                           salt=d64("DGv6ra1nlYgDCS1FRnbzlw"))
    expected = d64("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
                   "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
                   "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
    assert body == expected
    # 86-octet header (Appendix A) + 41 octets and the delimiter + the 16-octet tag; the
    # example's "Content-Length: 145" is one more than its own body (144 octets)
    assert len(body) == 86 + 42 + 16


def test_each_message_has_its_own_key_and_salt_and_decrypts():
    ua = UserAgent()
    keys = webpush.parse_keys(ua.keys())
    assert isinstance(keys, webpush.Keys)
    one, two = webpush.encrypt(b'{"a":1}', keys), webpush.encrypt(b'{"a":1}', keys)
    assert one[:16] != two[:16] and one[21:86] != two[21:86]  # RFC 8291 §3.4 salt, keyid
    assert int.from_bytes(one[16:20], "big") == 4096 and one[20] == 65  # rs, idlen (RFC 8188 §2.1)
    assert ua.decrypt(one) == {"a": 1}


def test_too_large_for_one_record_is_refused():
    keys = webpush.parse_keys(UserAgent().keys())
    try:
        webpush.encrypt(b"x" * 4080, keys)
    except ValueError:
        return
    raise AssertionError("accepted a payload over one record")


def test_check_url():
    assert webpush.check_url("https://push.example.net/p/1") is None
    assert webpush.check_url("https://push.example.net:8443/p?x=1") is None
    for bad in ("http://push.example.net/p", "HTTPS://x/", "ftp://x/", "https:///p", "//x/p", "p",
                "https://user:pw@x/p", "https://x/ p", "https://x:99999/", 42, None, "https://" + "a" * 3000):
        assert webpush.check_url(bad) is not None, bad
    assert webpush.check_url("http://127.0.0.1:9/p") is not None  # only with the option
    for loop in ("http://127.0.0.1:9/p", "http://[::1]:9/p", "http://localhost/p", "http://127.9.9.9/"):
        assert webpush.check_url(loop, allow_http_loopback=True) is None, loop
    assert webpush.check_url("http://10.0.0.1/p", allow_http_loopback=True) is not None
    assert webpush.check_url("http://localhost.example.com/p", allow_http_loopback=True) is not None


def test_parse_keys_rejects_what_rfc8291_cannot_use():
    good = UserAgent().keys()
    assert isinstance(webpush.parse_keys(good), webpush.Keys)
    point = d64(good["p256dh"])
    cases = [
        None, [], {"p256dh": good["p256dh"]}, {**good, "extra": "x"},
        {**good, "auth": "not base64!"}, {**good, "auth": base64.urlsafe_b64encode(b"x" * 15).decode()},
        {**good, "p256dh": webpush.b64url(point[:33])},  # compressed/short
        {**good, "p256dh": webpush.b64url(b"\x04" + b"\x01" * 64)},  # not on the curve
        {**good, "p256dh": base64.b64encode(point).decode().replace("-", "+")},  # padded is fine, +/ not
    ]
    for keys in cases[:-1]:
        assert isinstance(webpush.parse_keys(keys), str), keys
    padded = {**good, "p256dh": base64.urlsafe_b64encode(point).decode()}
    assert isinstance(webpush.parse_keys(padded), webpush.Keys)


@RELAXED
@given(st.dictionaries(st.sampled_from(["p256dh", "auth", "x"]), st.one_of(st.text(max_size=100), st.integers())))
def test_parse_keys_never_crashes(value):
    assert isinstance(webpush.parse_keys(value), (str, webpush.Keys))


@RELAXED
@given(st.text(max_size=200))
def test_check_url_never_crashes(url):
    assert webpush.check_url(url, True) is None or isinstance(webpush.check_url(url, True), str)


def test_state_change_body_filters_types():
    states = {"A1": {"Email": "7", "Mailbox": "7", "Thread": "5"}}
    assert webpush.state_change_body(states, None) == {"@type": "StateChange", "changed": states}
    assert webpush.state_change_body(states, ["Mailbox"]) == {"@type": "StateChange",
                                                              "changed": {"A1": {"Mailbox": "7"}}}
    assert webpush.state_change_body(states, ["CalendarEvent"]) is None


def test_push_request_headers():
    ua = UserAgent()
    headers, body = webpush.push_request("https://p.example/x", {"@type": "StateChange", "changed": {}},
                                         webpush.parse_keys(ua.keys()), None, 0, state_change=True)
    assert headers["TTL"] == str(webpush.TTL_SECONDS) and headers["Urgency"] == "normal"
    assert headers["Topic"] == webpush.TOPIC and len(webpush.TOPIC) <= 32  # RFC 8030 §5.4
    assert headers["Content-Encoding"] == "aes128gcm" and headers["Content-Type"] == "application/json"
    assert ua.decrypt(body)["@type"] == "StateChange"
    headers, body = webpush.push_request("https://p.example/x", {"a": 1}, None, None, 0, state_change=False)
    assert "Topic" not in headers and "Content-Encoding" not in headers and json.loads(body) == {"a": 1}


def test_vapid_key_is_made_once_kept_private_and_signs(tmp_path):
    path = str(tmp_path / "vapid-private.pem")
    one = webpush.VapidKey.load_or_create(path, "mailto:postmaster@example.org")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    two = webpush.VapidKey.load_or_create(path, "mailto:postmaster@example.org")
    assert one.application_server_key == two.application_server_key and one.fingerprint == two.fingerprint
    raw = d64(one.application_server_key)
    assert len(raw) == 65 and raw[0] == 4  # RFC 9749 §3: uncompressed P-256, base64url
    header = one.authorization("https://push.example.net/p/1?x", now=1_000_000)
    assert Vapid02.verify(header)
    t = dict(p.split("=", 1) for p in header.split(" ", 1)[1].split(","))["t"]
    claims = json.loads(webpush.b64url_decode(t.split(".")[1]))
    assert claims == {"aud": "https://push.example.net", "exp": 1_000_000 + webpush.JWT_LIFETIME,
                      "sub": "mailto:postmaster@example.org"}  # RFC 8292 §2: exp within 24 h
    assert one.authorization("https://push.example.net/other", now=1_000_100) == header  # cached per origin
    assert one.authorization("https://push.example.net/other", now=1_000_000 + 12 * 3600) != header


def test_ece_library_rejects_a_tampered_body():
    ua = UserAgent()
    body = bytearray(webpush.encrypt(b"{}", webpush.parse_keys(ua.keys())))
    body[-1] ^= 1
    try:
        ua.decrypt(bytes(body))
    except http_ece.ECEException:
        return
    raise AssertionError("tampered body decrypted")
