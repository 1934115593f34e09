"""Fast paths of the MIME summary agree with their plain definitions.

RFC 2045 §6.7: trailing whitespace is transport padding (rule 3), a line ending in "="
is a soft break (rule 5), "=XX" is one octet, any other "=" is kept (lenient decoding).
``_qp_decode`` hands the easy inputs to ``binascii.a2b_qp``; whatever it picks, the
result must be the one ``_qp_decode_lines`` (the definition) gives.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dualmail.mime.text import _qp_decode, _qp_decode_lines

_PIECES = [b"a", b"Z", b"=", b"3", b"D", b"d", b"f", b"0", b"=3D", b"=e9", b"=C3=A9", b"=\r\n",
           b"=\n", b"\r\n", b"\n", b"\r", b" ", b"\t", b"_", b"\x00", b"\xff", b"==", b"=4",
           b"= \r\n", b"text ", b"=0A", b"=0D"]

qp_inputs = st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join)


@settings(max_examples=2000, deadline=None)
@given(qp_inputs, st.booleans())
def test_fast_path_agrees_with_line_decoder(data: bytes, crlf: bool) -> None:
    assert _qp_decode(data, crlf) == _qp_decode_lines(data, crlf)


def test_examples() -> None:
    for data in (b"caf=C3=A9 \r\nsoft=\r\nbreak\r\n", b"a=zz=", b"a==41", b"=", b"x =  \r\ny",
                 b"tab\t\r\n", b"lone\rcr=41", b"a=3d=3Db=3f\n"):
        for crlf in (False, True):
            assert _qp_decode(data, crlf) == _qp_decode_lines(data, crlf), data


_WORDS = st.lists(st.sampled_from(["a", "word", "x" * 300, " ", "\n", "\t", "é", "  ", "long" * 40]),
                  max_size=200).map("".join)


def _preview_reference(text: str) -> str:
    out: list[str] = []
    size = -1
    for w in text[: 16 * 1024].split():
        out.append(w)
        size += len(w) + 1
        if size >= 256:
            break
    return " ".join(out)[:256]


@settings(max_examples=1000, deadline=None)
@given(_WORDS)
def test_preview_from_prefixes_equals_whole_split(text: str) -> None:
    """RFC 8621 §4.1.4 preview; reading a prefix first must not change it."""
    from dualmail.mime.parse import _preview_of

    assert _preview_of(text) == _preview_reference(text)
    assert _preview_of(text * 30) == _preview_reference(text * 30)
