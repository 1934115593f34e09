"""THE list of answers where dualmail knowingly differs from Dovecot, each with the RFC
section that makes dualmail's answer the right one.

An entry is ``Deviation(scope, subject, item, rfc, why)``: ``scope`` is "inbox" (APPENDed
mail) or "mbox" (imported mbox files); ``subject`` and ``item`` are ``fnmatch`` patterns
over ``Diff.subject`` (a corpus message name, or "query") and ``Diff.item`` (the FETCH item; a
literal "[" followed by "]" is written "[[]"
or the SEARCH/SORT command).  Keep it short: target zero entries for BODYSTRUCTURE and
ENVELOPE of well-formed messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Deviation:
    scope: str
    subject: str
    item: str
    rfc: str
    why: str

    def matches(self, diff) -> bool:
        return fnmatchcase(diff.subject, self.subject) and fnmatchcase(diff.item, self.item)



# -- Dovecot 2.3 does not decode RFC 2231 parameters: boundary*= is not found, so the
#    multipart has one empty part; other name*= parameters are passed on undecoded.
D = Deviation
_2231 = "RFC 2231 §3-§4 (continuations, charsets) and RFC 9051 §7.5.2 (servers SHOULD decode them in BODYSTRUCTURE)"
_NOPART = ("RFC 2046 §5.1.1: a multipart body with no (valid) delimiter has no body part; dualmail shows its text "
           "as one text/plain part (the text stays readable, searchable, and in JMAP textBody) where Dovecot shows an empty one")
_HDR = ("RFC 5322 §2.2 / §3.5: a line that is neither a field nor a continuation ends the header section and starts "
        "the body (as Python's email package reads it); Dovecot reads on to the next empty line")
_PREFIX = ("RFC 2046 §5.1.1: a delimiter line is the boundary followed only by optional '--' and white space; "
           "Dovecot also accepts a line that merely starts with it")
_CLOSE_CRLF = ("RFC 2046 §5.1.1: the CRLF after a nested multipart's close delimiter is the CRLF of the enclosing "
               "multipart's next delimiter (delimiter := CRLF dash-boundary); Dovecot counts it in the nested part")

DEVIATIONS: list[Deviation] = [
    # RFC 2231
    D("inbox", "dovecot/rfc2231_params.eml", "*", _2231, "boundary*= and name*0*= continuations"),
    D("inbox", "cpython/msg_33.txt", "*", _2231, "boundary*=ansi-x3.4-1968''..."),
    D("inbox", "cpython/msg_29.txt", "BODY*", _2231, "title*=us-ascii'en'... decoded"),
    D("inbox", "cpython/msg_32.txt", "BODY*", _2231, "charset*= decoded (Dovecot adds a second, default charset)"),
    D("inbox", "mime/encoded_headers.eml", "BODYSTRUCTURE", _2231,
      "filename*=iso-8859-1'en'%A3... decoded and re-encoded as UTF-8 (RFC 2231 §4) for 7-bit clients"),
    D("inbox", "query", "SEARCH CHARSET UTF-8 * {}", _2231 + "; RFC 2045 §5.2 and RFC 2049 §2 for the others",
      "words in the parts Dovecot cannot see (RFC 2231 boundary, Content-Type: text without subtype, unknown "
      "charset read as UTF-8/Latin-1) and in decoded RFC 2047 words of an attached message's header"),
    # Content-Type: text (no subtype)
    D("inbox", "cpython/msg_14.txt", "BODY*", "RFC 2045 §5.2: an invalid Content-Type is taken as text/plain",
      "Dovecot answers type \"\" subtype \"\""),
    D("inbox", "dovecot/text_no_subtype.eml", "BODY*", "RFC 2045 §5.2: an invalid Content-Type is taken as text/plain "
      "(dualmail keeps the charset it names)", "Dovecot answers type \"\" subtype \"\""),
    # multipart without any delimiter
    *[D("inbox", f"cpython/{n}", i, _NOPART, "no delimiter line at all")
      for n in ("msg_17.txt", "msg_25.txt", "msg_31.txt", "msg_41.txt") for i in ("BODY*", "BINARY*")],
    # header section ended by a non-field line
    *[D("inbox", f"cpython/{n}", "*", _HDR, "") for n in ("msg_19.txt", "msg_35.txt", "msg_47.txt")],
    D("inbox", "query", "SEARCH NOT BODY the", _NOPART + "; " + _HDR, "msg_17, msg_25, msg_35"),
    # mbox From_ line / non-field lines in HEADER.FIELDS.NOT
    D("inbox", "cpython/msg_25.txt", "BODY.PEEK[HEADER.FIELDS.NOT *", "RFC 9051 §6.4.5: HEADER.FIELDS.NOT returns header "
      "fields; a leading mbox 'From ' line is no field", ""),
    D("inbox", "cpython/msg_43.txt", "BODY.PEEK[HEADER.FIELDS.NOT *", "RFC 9051 §6.4.5 (as msg_25)", ""),
    D("inbox", "mime/no_body.eml", "BODY.PEEK[HEADER.FIELDS.NOT *", "RFC 9051 §6.4.5 / RFC 5322 §2.2: a header field "
      "ends with CRLF; dualmail completes the unterminated last field", ""),
    # boundary prefix matching and the CRLF after nested close delimiters
    D("inbox", "mime/broken_boundary.eml", "*", _PREFIX, "--rightnot a delimiter"),
    D("inbox", "cpython/msg_38.txt", "*", _PREFIX, "'very tricky' nested boundaries"),
    D("inbox", "cpython/msg_42.txt", "*", _PREFIX, "an attached multipart with only a close delimiter"),
    D("inbox", "mime/rfc822_attachment.eml", "*", _CLOSE_CRLF, "the message/rfc822 part is 2 octets shorter"),
    D("inbox", "dovecot/nested_rfc822.eml", "*", _CLOSE_CRLF, "the message/rfc822 part is 2 octets shorter"),
    D("inbox", "dovecot/reused_boundary.eml", "BODY.PEEK[[]1]", _CLOSE_CRLF, "the nested multipart is 2 octets shorter"),
    # ENVELOPE
    *[D("inbox", f"cpython/{n}", "ENVELOPE", "RFC 9051 §7.5.2: mailbox and host are the address's own (empty) "
        "parts; Dovecot invents MISSING_MAILBOX / MISSING_DOMAIN", "") for n in ("msg_05.txt", "msg_15.txt", "msg_43.txt")],
    D("inbox", "cpython/msg_27.txt", "ENVELOPE", "RFC 5322 §2.2.3: unfolding removes only the CRLF; the TAB stays",
      "Dovecot turns the TAB into a space"),
    D("inbox", "dovecot/odd_folding.eml", "ENVELOPE", "RFC 5322 §2.2.3 (unfolding removes only CRLF) and §3.6.1 "
      "(the leading FWS is not part of the date)", "Dovecot squeezes folded white space, keeps a leading space"),
    # BINARY
    D("inbox", "mailgen/*", "BINARY.SIZE[*", "RFC 3516 §4.2: BINARY.SIZE is the size of the BINARY[] answer",
      "Dovecot's BINARY.SIZE of 8bit/QP/base64 text is not the length of its own BINARY[]"),
    D("inbox", "cpython/msg_15.txt", "BINARY*", "RFC 3516 §4.2", "Dovecot answers NO for these parts"),
    D("inbox", "mime/bad_charset.eml", "BINARY.SIZE[*", "RFC 3516 §4.2", "Dovecot answers NO for these parts"),
    D("inbox", "cpython/msg_39.txt", "BINARY*", "RFC 3516 §4.1: the decodable part of bad base64 is returned",
      "Dovecot drops the connection on BINARY of base64 'XXX'"),
    # dates
    *[D("inbox", "query", q, "RFC 5256 §2.2: without a parseable Date, the sent date is the INTERNALDATE (SORT); "
        "dualmail's SENT* SEARCH uses the same, Dovecot takes 1970", "")
      for q in ("SEARCH SENTBEFORE 1-Jan-2003", "SEARCH SENTSINCE 1-Jan-2010", "SEARCH SENTBEFORE 1-Jan-1980",
                "SEARCH SENTSINCE 1-Jan-2019 SENTBEFORE 1-Jan-2022")],
    *[D("inbox", "query", q, "RFC 5256 §2.2 / RFC 5322 §4.3: 'Date: 01 Jan 2001 00:01+0000' (msg_47) is read "
        "leniently as a date, Dovecot falls back to the INTERNALDATE", "")
      for q in ("SORT (DATE) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL", "SORT (DATE SUBJECT) UTF-8 ALL")],
    D("inbox", "query", "SORT (FROM) UTF-8 ALL", "RFC 5256 §2.2: the addr-mailbox of 'From: MAILER DAEMON' (msg_43) "
      "is empty; Dovecot sorts its MISSING_MAILBOX placeholder", ""),
    D("inbox", "query", "SEARCH TEXT inner", "RFC 9051 §6.4.4: TEXT is matched against the decoded header and body "
      "text; a MIME part's boundary parameter (boundary=\"inner\") is structure, not text", ""),
    # -- the APPEND family (scope "append": tests/dovecot/test_dovecot_append_ext.py; item =
    #    the tagged status and response code of one scenario)
    D("append", "multiappend-empty-second", "status",
      "RFC 5530 §3 (CANNOT: the operation violates an invariant of the server)",
      "both refuse a MULTIAPPEND with an empty message and append nothing; dualmail says why with "
      "[CANNOT] as for a single empty APPEND, Dovecot gives no code"),
    D("append", "catenate-missing-part", "status",
      "RFC 4469 §5 (BADURL: the URL is invalid or cannot be resolved) and §3",
      "a ;SECTION= naming a part the message does not have resolves to nothing: dualmail answers "
      "NO [BADURL url]; Dovecot appends the other parts and an empty one"),
    D("append", "catenate-empty", "status",
      "RFC 4469 §3 (the result is the message APPEND stores) and RFC 5322 §3.5",
      "an empty CATENATE result is refused like an empty APPEND literal (NO [CANNOT]), which "
      "Dovecot refuses too; Dovecot accepts the zero-byte result of CATENATE"),
]


def _scope(diff) -> str:
    if diff.item == "status":  # a command scenario (test_dovecot_append_ext.py)
        return "append"
    return "mbox" if diff.item.startswith("[") else "inbox"


def _listed(diff) -> bool:
    if any(e.scope == _scope(diff) and e.matches(diff) for e in DEVIATIONS):
        return True
    if _scope(diff) == "mbox":  # a MIME deviation shows in imported mail too
        plain = type(diff)(diff.subject, diff.item.split("] ", 1)[1], diff.dovecot, diff.dualmail)
        return any(e.scope == "inbox" and e.matches(plain) for e in DEVIATIONS)
    return False


def unlisted(diffs) -> list:
    """The differences no entry accounts for (an "inbox" entry also covers the same
    message and item in imported mbox mail)."""
    return [x for x in diffs if not _listed(x)]


def stale(diffs, scope: str) -> list[Deviation]:
    return [e for e in DEVIATIONS if e.scope == scope and not any(_scope(x) == scope and e.matches(x) for x in diffs)]
