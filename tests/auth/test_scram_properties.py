"""SCRAM server side (dualmail/store/scram.py) on hostile input: any bytes end in
``ScramError`` or a valid message, never another exception; a right proof always passes
and any altered proof fails (RFC 5802 §5)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given, settings, strategies as st

from dualmail.store.scram import ScramError, ScramServer, scram_keys

KEYS = scram_keys("pencil", salt=b"0123456789abcdef", iterations=4096)


@given(st.binary(max_size=200), st.binary(max_size=300))
@settings(max_examples=300)
def test_any_input_is_a_scram_error_or_a_message(first: bytes, final: bytes) -> None:
    s = ScramServer()
    try:
        s.first(first)
    except ScramError:
        return
    s.challenge(KEYS)
    try:
        out = s.final(final)
    except ScramError:
        return
    raise AssertionError(f"a random client-final was accepted: {out}")


def _final(s: ScramServer, nonce: str, password: str, flip: int | None) -> bytes:
    server_first = s.challenge(KEYS)
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    without = f"c=biws,r={attrs['r']}"
    auth = f"n=user,r={nonce},{server_first},{without}".encode()
    sig = hmac.new(hashlib.sha256(client_key).digest(), auth, hashlib.sha256).digest()
    proof = bytearray(a ^ b for a, b in zip(client_key, sig))
    if flip is not None:
        proof[flip % 32] ^= 1 << (flip % 8)
    return f"{without},p={base64.b64encode(bytes(proof)).decode()}".encode()


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+/", min_size=1, max_size=40),
       st.one_of(st.none(), st.integers(0, 255)))
@settings(max_examples=30, deadline=None)
def test_right_proof_passes_altered_fails(nonce: str, flip: int | None) -> None:
    s = ScramServer()
    s.first(f"n,,n=user,r={nonce}".encode())
    final = _final(s, nonce, "pencil", flip)
    if flip is None:
        assert s.final(final).startswith("v=")
    else:
        try:
            s.final(final)
        except ScramError as e:
            assert e.args[0] == "invalid-proof"
        else:
            raise AssertionError("an altered proof was accepted")
