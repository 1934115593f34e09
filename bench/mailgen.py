"""Generate deterministic, realistic mail for benchmarks and import tests.

``generate(n, seed)`` yields *n* RFC 5322 messages (CRLF line endings) that
look like a real mailbox: threads of replies with In-Reply-To/References,
multipart/alternative text+HTML, multipart/mixed with base64 attachments,
RFC 2047 encoded headers, several charsets, mailing-list traffic, dates
spread over years and a heavy-tailed size distribution (1 KB .. 2 MB,
median about 5 KB).  The same seed always gives the same bytes.

``write_mbox`` (mboxrd, with ``From `` escaping and Status headers) and
``write_maildir`` (Maildir++ with flags in the ``:2,`` info) put them on
disk; the CLI does that::

    python bench/mailgen.py --count 10000 --mbox out.mbox [--seed 1]
    python bench/mailgen.py --count 10000 --maildir out/ [--seed 1]

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email.utils
import html
import math
import os
import random
import re
import sys
import time
import unicodedata
from collections import deque
from typing import BinaryIO, Iterable, Iterator, NamedTuple

__all__ = [
    "GeneratedMessage",
    "generate",
    "generate_records",
    "mboxrd_escape",
    "with_status",
    "write_mbox",
    "write_maildir",
    "encode_modified_utf7",
    "main",
]


class GeneratedMessage(NamedTuple):
    raw: bytes  # the message, CRLF line endings
    date: int  # delivery time, epoch seconds (a little after the Date header)
    flags: frozenset[str]  # IMAP flags a mail client would have set
    folder: tuple[str, ...]  # suggested folder; () is INBOX
    sender: str  # envelope sender, for the mbox From_ line
    new: bool  # not yet seen by any client (Maildir new/, no mbox Status)


# ---------------------------------------------------------------------------
# raw material

_EN_WORDS = (
    "the project meeting report budget schedule team release server client "
    "update change review draft version issue bug fix patch test build "
    "deadline customer contract invoice payment order delivery account "
    "question answer proposal document attachment summary agenda minutes "
    "office travel conference session slides demo feature design plan "
    "morning afternoon week month quarter year today tomorrow yesterday "
    "quickly carefully probably certainly already still again soon later "
    "new old final small large important urgent simple complex current "
    "next previous first last good better best great fine clear open "
    "send check confirm approve discuss prepare finish start move share "
    "we you they I it this that our your their some any every each "
    "with for about from into over after before during between under "
    "and but or so because although while if when since until"
).split()
_EN_STARTS = (
    "From", "From", "We", "I", "Please", "Thanks,", "Also,", "The", "As",
    "Could", "Let's", "It", "Our", "After", "Before", "Regarding", "Just",
)
_DE_WORDS = (
    "das Projekt die Besprechung der Bericht die Änderung die Größe für über "
    "natürlich möchte können müssen würde Grüße Bestätigung Rückmeldung "
    "heute morgen nächste Woche Termin Angebot Rechnung Lieferung Kunde "
    "schön gemäß Prüfung Übersicht Unterstützung Verfügung Straße Maßnahme "
    "und aber oder weil wenn dass noch schon bitte danke gerne leider "
    "wir Sie ich es unser Ihr dieser jeder mit von zu bei nach vor aus"
).split()
_FR_WORDS = (
    "le projet la réunion le rapport été déjà très problème reçu ça où "
    "à propos de la prochaine semaine demain aujourd'hui merci beaucoup "
    "la facture le client la livraison le devis préparé envoyé vérifié "
    "élevé général intéressé première dernière réponse Noël fête théâtre "
    "et mais ou parce que si quand encore toujours peut-être bientôt "
    "nous vous je il elle notre votre ce chaque avec pour sur dans après"
).split()
_RU_WORDS = (
    "привет спасибо письмо встреча завтра сегодня проект вопрос документ "
    "пожалуйста работа отчёт договор счёт клиент сервер версия изменение "
    "неделя месяц срок задача решение предложение команда обсуждение "
    "и но или потому что если когда уже ещё очень можно нужно надо "
    "мы вы я он она наш ваш этот каждый с для по в на после до от"
).split()
_JA_PHRASES = (
    "お世話になっております。", "よろしくお願いいたします。", "会議の件ですが、",
    "資料を添付いたします。", "明日の打ち合わせについて", "確認をお願いします。",
    "ご連絡ありがとうございます。", "来週の予定は", "変更になりました。",
    "担当者に確認します。", "見積書を送付します。", "納期について", "検討中です。",
    "本日はありがとうございました。", "次回の会議は", "東京本社で行います。",
    "議事録を共有します。", "問題がありましたら", "お知らせください。",
    "新しいバージョンを", "公開しました。", "申し訳ございません。",
)

_SUBJECTS = {
    "en": (
        "Meeting notes for {day}", "Quarterly report Q{q}", "Question about the {w}",
        "Invoice #{n}", "Build failure on {branch}", "[PATCH {i}/{k}] {w}: fix {w2}",
        "Lunch on {day}?", "Updated {w} schedule", "Your order {n} has shipped",
        "Re-scheduling the {w} review", "Draft {w} proposal", "Weekly status",
        "Welcome to the team!", "Travel plans for {month}", "Action required: {w}",
    ),
    "de": (
        "Besprechung am {day}", "Änderung der Größe", "Rückmeldung zum Angebot {n}",
        "Grüße aus München", "Prüfung der Rechnung {n}", "Übersicht {month}",
        "Termin nächste Woche", "Bestätigung Ihrer Bestellung {n}",
    ),
    "fr": (
        "Réunion de {day}", "Problème avec la facture {n}", "Déjà reçu ?",
        "Fête de Noël", "Été {year} : vacances", "Réponse à votre devis {n}",
        "Prochaine étape du projet", "Compte rendu de la réunion",
    ),
    "ru": (
        "Встреча завтра", "Вопрос по проекту", "Отчёт за {month}",
        "Счёт N{n}", "Новая версия сервера", "Договор на подпись",
    ),
    "ja": (
        "会議の件", "見積書送付のご案内", "打ち合わせ日程について",
        "資料の共有", "納期変更のお知らせ", "議事録（{month}）",
    ),
}
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_MONTH_NAMES = ("January", "March", "May", "July", "September", "November")
_BRANCHES = ("main", "release-2.1", "feature/search", "hotfix/login")

_NAMES = {
    "en": (("John", "Mary", "David", "Sarah", "Michael", "Emma", "James",
            "Olivia", "Robert", "Linda", "Peter", "Grace"),
           ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clark",
            "Walker", "Young", "Hall", "Allen", "O'Brien", "Lee")),
    "de": (("Jörg", "Jürgen", "Käthe", "Björn", "Günther", "Anna", "Lukas",
            "Sophie", "Maximilian", "Hannah"),
           ("Müller", "Schröder", "Weiß", "Groß", "Köhler", "Schmidt",
            "Becker", "Hoffmann", "Schäfer", "Krüger")),
    "fr": (("Hélène", "François", "Zoé", "Jérôme", "Amélie", "Benoît",
            "Camille", "Léa", "Étienne", "Chloé"),
           ("Dupré", "Lefèvre", "Girard", "Bérard", "Moreau", "Lemaître",
            "Fontaine", "Durand", "Rousseau", "Garçon")),
    "ru": (("Алексей", "Мария", "Дмитрий", "Ольга", "Сергей", "Наталья",
            "Иван", "Елена"),
           ("Иванов", "Петрова", "Смирнов", "Кузнецова", "Попов", "Соколова",
            "Лебедев", "Новикова")),
    "ja": (("太郎", "花子", "健一", "美咲", "大輔", "由美"),
           ("田中", "佐藤", "鈴木", "高橋", "伊藤", "渡辺")),
}
_ROMAN = {
    "ru": ("alexey", "maria", "dmitry", "olga", "sergey", "natalia", "ivan",
           "elena"),
    "ja": ("taro", "hanako", "kenichi", "misaki", "daisuke", "yumi"),
}
_DOMAINS = (
    "example.com", "example.org", "example.net", "mail.example.de",
    "corp.example.fr", "example.co.jp", "example.ru", "university.example.edu",
    "gmail.example.com", "bigcorp.example",
)
_LISTS = (
    ("dev", "Development discussion"),
    ("announce", "Release announcements"),
    ("users", "User questions"),
    ("security", "Security advisories"),
    ("jobs", "Job postings"),
)
_ZONE_OFFSETS = (0, 0, 60, 120, -300, -240, -480, -420, 540, 180, 330, 600)
_WDAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MAILERS = (
    "Mozilla Thunderbird 115.4.1", "Microsoft Outlook 16.0",
    "Apple Mail (2.3731.700.6)", "Mutt/2.2.12 (2023-09-09)",
    "Roundcube Webmail/1.6.5", "Evolution 3.50.1",
)

# (language, body charset, content-transfer-encoding, header charset, weight)
_STYLES = (
    ("en", "us-ascii", "7bit", None, 20),
    ("en", "utf-8", "8bit", None, 12),
    ("en", "utf-8", "quoted-printable", None, 10),
    ("en", "utf-8", "base64", "utf-8", 5),  # emoji
    ("de", "iso-8859-1", "quoted-printable", "iso-8859-1", 5),
    ("de", "windows-1252", "quoted-printable", "iso-8859-1", 3),
    ("de", "utf-8", "8bit", "utf-8", 4),
    ("fr", "iso-8859-1", "quoted-printable", "iso-8859-1", 4),
    ("fr", "windows-1252", "8bit", "iso-8859-1", 2),
    ("fr", "utf-8", "quoted-printable", "utf-8", 4),
    ("ru", "koi8-r", "8bit", "koi8-r", 4),
    ("ru", "utf-8", "base64", "utf-8", 5),
    ("ja", "iso-2022-jp", "7bit", "iso-2022-jp", 4),
    ("ja", "shift_jis", "base64", "iso-2022-jp", 2),
    ("ja", "utf-8", "base64", "utf-8", 3),
)

# (content type, file name, extension, magic bytes at the start)
_ATTACHMENTS = (
    ("application/pdf", "Quarterly_report", "pdf", b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n"),
    ("application/pdf", "Präsentation", "pdf", b"%PDF-1.7\n%\xb5\xb5\xb5\xb5\n"),
    ("image/jpeg", "IMG_2041", "JPG", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    ("image/png", "screenshot", "png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    ("application/zip", "logs", "zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     "Vertrag_Entwurf", "docx", b"PK\x03\x04\x14\x00\x06\x00\x08\x00"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
     "Budget 2024", "xlsx", b"PK\x03\x04\x14\x00\x06\x00\x08\x00"),
    ("application/octet-stream", "Résumé", "bin", b"\x00\x01\x02\x03"),
)

_B64_LINE = 77  # 76 base64 characters + "\n"; each line carries 57 bytes


# ---------------------------------------------------------------------------
# encoding helpers


def _ew(text: str, charset: str, q: bool) -> str:
    """RFC 2047 encoded-words for *text*, folded with "\\n " between words."""
    label = charset.upper()
    words: list[str] = []
    chunk = ""

    def enc(s: str) -> str:
        data = s.encode(charset)
        if q:
            body = "".join(
                chr(c) if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122
                           or c in b"!*+-/")
                else "_" if c == 32 else "=%02X" % c
                for c in data
            )
            return f"=?{label}?Q?{body}?="
        return f"=?{label}?B?{base64.b64encode(data).decode()}?="

    for ch in text:
        candidate = chunk + ch
        if chunk and len(enc(candidate)) > 75:
            words.append(enc(chunk))
            chunk = ch
        else:
            chunk = candidate
    if chunk:
        words.append(enc(chunk))
    return "\n ".join(words)


def _header_text(text: str, charset: str | None, rng: random.Random) -> str:
    """*text* as a header value: plain if ASCII, else encoded-words."""
    if text.isascii():
        return text
    if charset is None or charset == "us-ascii":
        charset = "utf-8"
    if charset in ("iso-2022-jp", "koi8-r"):
        return _ew(text, charset, q=False)
    return _ew(text, charset, q=rng.random() < 0.5)


def encode_modified_utf7(name: str) -> str:
    """Encode a mailbox name segment in IMAP modified UTF-7."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            b = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _rfc2822_date(epoch: int, offset_min: int) -> str:
    t = time.gmtime(epoch + offset_min * 60)
    sign = "+" if offset_min >= 0 else "-"
    a = abs(offset_min)
    return "%s, %02d %s %d %02d:%02d:%02d %s%02d%02d" % (
        _WDAY[t.tm_wday], t.tm_mday, _MON[t.tm_mon - 1], t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec, sign, a // 60, a % 60,
    )


def _asctime(epoch: int) -> str:
    t = time.gmtime(epoch)
    return "%s %s %2d %02d:%02d:%02d %d" % (
        _WDAY[t.tm_wday], _MON[t.tm_mon - 1], t.tm_mday,
        t.tm_hour, t.tm_min, t.tm_sec, t.tm_year,
    )


# ---------------------------------------------------------------------------
# the corpus: built once, independent of the seed, then sampled


def _wrap(words: list[str], width: int = 72) -> str:
    lines: list[str] = []
    cur = ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return "\n".join(lines)


def _typographic(s: str) -> str:
    """Sprinkle windows-1252-only punctuation over Latin-1 text."""
    return (s.replace(" - ", " – ").replace("...", "…")
            .replace("'", "’").replace(" 100 EUR", " 100 €"))


class _Corpus:
    def __init__(self) -> None:
        r = random.Random(0x6D61696C)
        self.paragraphs: dict[str, list[str]] = {}
        for lang in ("en", "de", "fr", "ru", "ja"):
            self.paragraphs[lang] = [self._paragraph(r, lang) for _ in range(300)]
        # (lang, charset) -> [(text bytes, html bytes)] for every paragraph
        self.encoded: dict[tuple[str, str], list[tuple[bytes, bytes]]] = {}
        for lang, charset, _cte, _hc, _w in _STYLES:
            key = (lang, charset)
            if key in self.encoded:
                continue
            items = []
            for i, p in enumerate(self.paragraphs[lang]):
                if charset == "windows-1252" or (charset == "utf-8" and lang in ("de", "fr")):
                    p = _typographic(p)
                if lang == "en" and charset == "utf-8" and i % 3 == 0:
                    p = p.replace(".", ". \u2014 \U0001F642", 1) if i % 2 else p + " \u2713"
                text = "\n".join(line.encode(charset, "replace").decode("latin-1")
                                 for line in p.split("\n")).encode("latin-1")
                h = "<p>" + html.escape(p, quote=False).replace("\n", "<br>\n") + "</p>"
                hb = "\n".join(line.encode(charset, "replace").decode("latin-1")
                               for line in h.split("\n")).encode("latin-1")
                items.append((text, hb))
            self.encoded[key] = items
        # A long run of full base64 lines (random data) to slice attachments from.
        blob = r.randbytes(57 * 38000)  # ~2.2 MB raw, ~2.9 MB encoded
        self.b64 = base64.encodebytes(blob)
        self.b64_lines = len(self.b64) // _B64_LINE
        assert len(self.b64) == self.b64_lines * _B64_LINE
        self.magic = []
        for ctype, name, ext, magic in _ATTACHMENTS:
            first = base64.encodebytes((magic + r.randbytes(57))[:57])
            self.magic.append(first)

    @staticmethod
    def _paragraph(r: random.Random, lang: str) -> str:
        if lang == "ja":
            lines = []
            for _ in range(r.randint(2, 6)):
                s = "".join(r.choice(_JA_PHRASES) for _ in range(r.randint(2, 4)))
                while len(s) > 36:
                    lines.append(s[:36])
                    s = s[36:]
                if s:
                    lines.append(s)
            return "\n".join(lines)
        vocab = {"en": _EN_WORDS, "de": _DE_WORDS, "fr": _FR_WORDS, "ru": _RU_WORDS}[lang]
        words: list[str] = []
        for _ in range(r.randint(2, 7)):
            n = r.randint(5, 18)
            sent = [r.choice(vocab) for _ in range(n)]
            if lang == "en" and r.random() < 0.5:
                sent[0] = r.choice(_EN_STARTS)
            sent[0] = sent[0][:1].upper() + sent[0][1:]
            if r.random() < 0.08:
                sent.insert(r.randint(1, n - 1), "-")
            if lang == "de" and r.random() < 0.2:
                sent.append("für 100 EUR")
            sent[-1] += r.choice(".....?!") if r.random() < 0.95 else "..."
            words.extend(sent)
        return _wrap(words)


_CORPUS: _Corpus | None = None


def _corpus() -> _Corpus:
    global _CORPUS
    if _CORPUS is None:
        _CORPUS = _Corpus()
    return _CORPUS


# ---------------------------------------------------------------------------
# generation


class _Person(NamedTuple):
    header: str  # 'Display Name <addr>' ready for a header
    addr: str
    name: str
    lang: str
    zone: int


class _Thread(NamedTuple):
    msgid: str
    subject: str  # header value without any Re: prefix
    refs: tuple[str, ...]
    date: int
    person: _Person
    style: tuple
    mlist: tuple[str, str] | None


def _people(r: random.Random, count: int = 240) -> list[_Person]:
    people = []
    langs = ("en", "en", "en", "de", "fr", "ru", "ja")
    for i in range(count):
        lang = langs[i % len(langs)]
        firsts, lasts = _NAMES[lang]
        fi, li = r.randrange(len(firsts)), r.randrange(len(lasts))
        first, last = firsts[fi], lasts[li]
        name = f"{last} {first}" if lang == "ja" else f"{first} {last}"
        if lang in _ROMAN:
            local = f"{_ROMAN[lang][fi % len(_ROMAN[lang])]}.{i}"
        else:
            local = (first + "." + last).lower()
            local = unicodedata.normalize("NFKD", local)
            local = local.encode("ascii", "ignore").decode().replace("'", "")
        addr = f"{local}@{r.choice(_DOMAINS)}"
        if name.isascii():
            disp = f'"{last}, {first}"' if r.random() < 0.2 else name
        else:
            cs = {"de": "iso-8859-1", "fr": "iso-8859-1", "ru": "koi8-r",
                  "ja": "iso-2022-jp"}[lang]
            if r.random() < 0.5:
                cs = "utf-8"
            disp = _header_text(name, cs, r)
        people.append(_Person(f"{disp} <{addr}>", addr, name, lang, r.choice(_ZONE_OFFSETS)))
    return people


def _fill_subject(r: random.Random, lang: str) -> str:
    t = r.choice(_SUBJECTS[lang])
    return t.format(
        day=r.choice(_DAYS), q=r.randint(1, 4), w=r.choice(_EN_WORDS),
        w2=r.choice(_EN_WORDS), n=r.randint(10000, 99999), branch=r.choice(_BRANCHES),
        i=1, k=r.randint(1, 9), month=r.choice(_MONTH_NAMES), year=r.randint(2016, 2024),
    )


def _msgid(r: random.Random, date: int, domain: str) -> str:
    style = r.random()
    if style < 0.4:
        tail = base64.b64encode(r.randbytes(30)).decode().replace("/", "-").replace("+", "_")
        return f"<CA{tail}@mail.gmail.example.com>"
    if style < 0.7:
        return "<%s.%d.%x@%s>" % (time.strftime("%Y%m%d%H%M%S", time.gmtime(date)),
                                   r.randint(1000, 99999), r.getrandbits(32), domain)
    h = "%032x" % r.getrandbits(128)
    return f"<{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}@{domain}>"


def _sizes(r: random.Random) -> tuple[int, int, bool]:
    """(size without attachments, attachment size, small extra attachment).

    The text part is log-normal around 4.3 KB; 7 % of messages carry
    attachments with a Pareto (alpha 1) size from 10 KB, capped so that the
    message stays under 2 MB; another 4 % a small attachment.
    """
    base = int(min(200_000, max(1000, r.lognormvariate(math.log(4300), 0.8))))
    u = r.random()
    if u < 0.07:
        return base, int(min(1_990_000 - base, 10_000 * r.paretovariate(1.0))), False
    return base, 0, u < 0.11


def _text_part(c: _Corpus, r: random.Random, style: tuple, budget: int,
               prefix: str = "") -> tuple[bytes, bytes]:
    """(plain, html) body bytes in the style's charset, about *budget* bytes."""
    lang, charset = style[0], style[1]
    items = c.encoded[(lang, charset)]
    plain: list[bytes] = []
    htm: list[bytes] = []
    size = 0
    while True:
        t, h = items[r.randrange(len(items))]
        plain.append(t)
        htm.append(h)
        size += len(t) + 2
        if size >= budget:
            break
    extra = r.random()
    if extra < 0.03:
        plain.insert(r.randint(0, len(plain)), b"From the minutes of the last meeting:")
    elif extra < 0.04:
        plain.insert(r.randint(0, len(plain)),
                     b">From an earlier message:\n>>From a quoted one\nFrom here on")
    body = b"\n\n".join(plain)
    if prefix:
        body = prefix.encode(charset, "replace") + body
    return body, b"\n".join(htm)


def _cte(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data)
    if cte == "quoted-printable":
        return binascii.b2a_qp(data)
    return data


def _leaf(ctype: str, charset: str, cte: str, body: bytes) -> bytes:
    body = _cte(body, cte)
    if not body.endswith(b"\n"):
        body += b"\n"
    return (b"Content-Type: %s; charset=\"%s\"\nContent-Transfer-Encoding: %s\n\n"
            % (ctype.encode(), charset.encode(), cte.encode())) + body


def _attachment(c: _Corpus, r: random.Random, size: int) -> bytes:
    k = r.randrange(len(_ATTACHMENTS))
    ctype, name, ext, _magic = _ATTACHMENTS[k]
    fname = f"{name}.{ext}"
    lines = max(1, size // (_B64_LINE + 1) - 1)
    lines = min(lines, c.b64_lines - 1)
    start = r.randrange(c.b64_lines - lines + 1)
    data = c.magic[k] + c.b64[start * _B64_LINE:(start + lines) * _B64_LINE]
    if fname.isascii():
        disp = f'attachment; filename="{fname}"'
        ct = f'{ctype}; name="{fname}"'
    elif r.random() < 0.5:
        quoted = "".join(
            ch if ch.isascii() and (ch.isalnum() or ch in "._-") else
            "".join("%%%02X" % b for b in ch.encode("utf-8"))
            for ch in fname
        )
        disp = f"attachment; filename*=UTF-8''{quoted}"
        ct = f"{ctype}; name*=UTF-8''{quoted}"
    else:
        enc = _ew(fname, "utf-8", q=False)
        disp = f'attachment; filename="{enc}"'
        ct = f'{ctype}; name="{enc}"'
    return (f"Content-Type: {ct}\nContent-Disposition: {disp}\n"
            f"Content-Transfer-Encoding: base64\n\n").encode() + data


def _small_text_attachment(r: random.Random) -> bytes:
    if r.random() < 0.5:
        rows = ["date,item,amount"] + [
            f"2023-{r.randint(1, 12):02d}-{r.randint(1, 28):02d},{r.choice(_EN_WORDS)},"
            f"{r.randint(1, 9999)}.{r.randint(0, 99):02d}"
            for _ in range(r.randint(10, 80))
        ]
        return ('Content-Type: text/csv; charset="us-ascii"; name="export.csv"\n'
                'Content-Disposition: attachment; filename="export.csv"\n'
                "Content-Transfer-Encoding: 7bit\n\n" + "\n".join(rows) + "\n").encode()
    uid = "%032x" % r.getrandbits(128)
    ics = ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Example//Cal//EN\nMETHOD:REQUEST\n"
           f"BEGIN:VEVENT\nUID:{uid}\nDTSTART:2024{r.randint(1, 12):02d}"
           f"{r.randint(1, 28):02d}T{r.randint(8, 17):02d}0000Z\nDURATION:PT1H\n"
           f"SUMMARY:{r.choice(_EN_WORDS).title()} review\nEND:VEVENT\nEND:VCALENDAR\n")
    return ('Content-Type: text/calendar; charset="utf-8"; method=REQUEST; name="invite.ics"\n'
            "Content-Transfer-Encoding: 7bit\n\n" + ics).encode()


def _multipart(r: random.Random, subtype: str, parts: list[bytes], preamble: bool) -> tuple[bytes, bytes]:
    """(Content-Type header line, body) of a multipart entity."""
    boundary = r.choice(("----=_Part_%d_%d.%d", "=_%08x%08x%04x", "Apple-Mail=_%08X-%04X-%04X"))
    args = (r.getrandbits(31), r.getrandbits(31), r.getrandbits(15))
    boundary = boundary % args
    out = [b"This is a multi-part message in MIME format.\n"] if preamble else []
    bb = boundary.encode()
    for p in parts:
        out.append(b"--" + bb + b"\n")
        out.append(p)
        if not p.endswith(b"\n"):
            out.append(b"\n")
    out.append(b"--" + bb + b"--\n")
    return (b'multipart/%s; boundary="%s"' % (subtype.encode(), bb), b"".join(out))


def generate_records(n: int, seed: int = 1) -> Iterator[GeneratedMessage]:
    """Yield *n* messages with their delivery metadata; deterministic."""
    c = _corpus()
    r = random.Random(seed)
    people = _people(r)
    by_lang: dict[str, list[_Person]] = {}
    for p in people:
        by_lang.setdefault(p.lang, []).append(p)
    styles = list(_STYLES)
    weights = [s[4] for s in styles]
    recent: deque[_Thread] = deque(maxlen=300)
    start = 1451606400  # 2016-01-01
    span = 9 * 365 * 86400
    for i in range(n):
        reply = bool(recent) and r.random() < 0.30
        if reply:
            parent = recent[-1 - min(len(recent) - 1, int(r.expovariate(1 / 15)))]
            style = parent.style
            mlist = parent.mlist
            same_lang = by_lang.get(style[0]) or people
            sender = r.choice(same_lang)
            date = parent.date + 60 + int(r.expovariate(1 / 21600))
            refs = parent.refs + (parent.msgid,)
            if len(refs) > 12:
                refs = refs[:1] + refs[-11:]
            subject_base = parent.subject
            pre = r.random()
            prefix = ("Re: " if pre < 0.90 else "RE: " if pre < 0.94 else
                      "AW: " if style[0] == "de" else "Re: Re: ")
            subject = prefix + subject_base
            to = parent.person
        else:
            style = r.choices(styles, weights)[0]
            sender = r.choice(by_lang.get(style[0]) or people)
            date = start + int(span * (i + r.random()) / n)
            refs = ()
            mlist = _LISTS[r.randrange(len(_LISTS))] if r.random() < 0.2 else None
            text = _fill_subject(r, style[0])
            subject_base = _header_text(text, style[3], r)
            if mlist is not None:
                subject_base = f"[{mlist[0]}] " + subject_base
            if subject_base.isascii() and r.random() < 0.05 and style[3]:
                subject_base = _ew(text, "utf-8", q=True)
            subject = subject_base
            to = r.choice(people)
        domain = sender.addr.rsplit("@", 1)[1]
        msgid = _msgid(r, date, domain)
        lang, charset, cte = style[0], style[1], style[2]

        base_size, att_size, small_att = _sizes(r)
        text_budget = max(400, base_size - 700 - 60 * len(refs))

        quote = ""
        if reply:
            q = c.paragraphs[lang][r.randrange(300)].split("\n")[: r.randint(1, 4)]
            who = parent.person.name if parent.person.name.isascii() else parent.person.addr
            quote = (f"On {_rfc2822_date(parent.date, parent.person.zone)}, {who} wrote:\n"
                     + "".join(f"> {line}\n" for line in q) + "\n")
            if r.random() < 0.3:
                quote = f"{quote[:-1]}> > {r.choice(_EN_WORDS)}\n\n"

        kind = r.random()
        alt = kind < 0.55
        if alt:
            text_budget = max(200, int(text_budget / 2.4))
        plain, htm = _text_part(c, r, style, text_budget, quote)
        if alt:
            hdoc = (b'<html><head><meta http-equiv="Content-Type" content="text/html; charset='
                    + charset.encode() + b'"></head>\n<body>\n' + htm + b"\n</body></html>\n")
            hcte = "quoted-printable" if cte in ("7bit", "8bit") and charset != "iso-2022-jp" else cte
            if charset == "iso-2022-jp":
                hcte = "7bit"
            ctype, body = _multipart(r, "alternative", [
                _leaf("text/plain", charset, cte, plain),
                _leaf("text/html", charset, hcte, hdoc),
            ], preamble=False)
            main_part = b"Content-Type: " + ctype + b"\n\n" + body
        else:
            main_part = _leaf("text/plain", charset, cte, plain)

        if att_size or small_att:
            parts = [main_part]
            if att_size:
                nparts = 1 if att_size < 200_000 or r.random() < 0.6 else 2
                for _ in range(nparts):
                    parts.append(_attachment(c, r, att_size // nparts))
            else:
                parts.append(_small_text_attachment(r) if r.random() < 0.7
                             else _attachment(c, r, r.randint(2000, 12000)))
            ctype, body = _multipart(r, "mixed", parts, preamble=True)
            content = b"Content-Type: " + ctype + b"\n\n" + body
        else:
            content = main_part

        h = []
        rdate = date + r.randint(1, 120)
        h.append(f"Return-Path: <{sender.addr}>")
        h.append(f"Received: from mx{r.randint(1, 9)}.{domain} (mx.{domain} "
                 f"[192.0.2.{r.randint(1, 254)}])\n\tby mail.example.org with ESMTPS id "
                 f"{r.getrandbits(48):012X}\n\tfor <{to.addr}>; {_rfc2822_date(rdate, 0)}")
        if r.random() < 0.5:
            h.append(f"Received: from [10.{r.randint(0, 255)}.{r.randint(0, 255)}."
                     f"{r.randint(1, 254)}] by smtp.{domain} with ESMTPSA; "
                     f"{_rfc2822_date(date, sender.zone)}")
        h.append(f"Date: {_rfc2822_date(date, sender.zone)}")
        h.append(f"From: {sender.header}")
        if mlist is not None:
            h.append(f"To: {mlist[0]}@lists.example.org")
        else:
            h.append(f"To: {to.header}")
            if r.random() < 0.25:
                cc = [r.choice(people).header for _ in range(r.randint(1, 3))]
                h.append("Cc: " + ",\n ".join(cc))
        h.append(f"Subject: {subject}")
        h.append(f"Message-ID: {msgid}")
        if refs:
            h.append(f"In-Reply-To: {refs[-1]}")
            h.append("References: " + "\n ".join(refs))
        h.append("MIME-Version: 1.0")
        if r.random() < 0.6:
            h.append(f"User-Agent: {r.choice(_MAILERS)}")
        if mlist is not None:
            lid, desc = mlist
            h.append(f"List-Id: {desc} <{lid}.lists.example.org>")
            h.append(f"List-Unsubscribe: <mailto:{lid}-leave@lists.example.org>,\n"
                     f" <https://lists.example.org/mailman/options/{lid}>")
            h.append(f"List-Archive: <https://lists.example.org/archives/{lid}/>")
            h.append(f"List-Post: <mailto:{lid}@lists.example.org>")
            h.append(f"List-Help: <mailto:{lid}-request@lists.example.org?subject=help>")
            h.append("Precedence: list")
            h.append(f"Sender: \"{lid}\" <{lid}-bounces@lists.example.org>")
        raw = ("\n".join(h) + "\n").encode("ascii") + content
        raw = raw.replace(b"\n", b"\r\n")

        # What a client would have done with it.
        newmsg = r.random() < 0.08
        flags: set[str] = set()
        f1, f2, f3 = r.random(), r.random(), r.random()
        if not newmsg:
            if f1 < 0.85:
                flags.add("\\Seen")
                if f2 < 0.12:
                    flags.add("\\Answered")
                elif f2 > 0.98:
                    flags.add("$Forwarded")
            if f3 < 0.05:
                flags.add("\\Flagged")
            elif f3 > 0.99:
                flags.add("\\Deleted")
            elif 0.985 < f3 < 0.99:
                flags.add("\\Draft")
        if mlist is not None and r.random() < 0.7:
            folder: tuple[str, ...] = ("Lists", mlist[0])
        else:
            f = r.random()
            year = time.gmtime(date).tm_year
            folder = (() if f < 0.78 else ("Archive", str(year)) if f < 0.9 else
                      ("Sent",) if f < 0.96 else ("Projets", "Été 2023") if f < 0.98
                      else ("日本語",))
        subject_for_thread = subject_base
        recent.append(_Thread(msgid, subject_for_thread, refs, date, sender, style, mlist))
        yield GeneratedMessage(raw, rdate, frozenset(flags), folder, sender.addr, newmsg)


def generate(n: int, seed: int = 1) -> Iterator[bytes]:
    """Yield *n* realistic messages (CRLF line endings); deterministic."""
    for m in generate_records(n, seed):
        yield m.raw


# ---------------------------------------------------------------------------
# writers

_FROM_ESCAPE = re.compile(rb"^(>*From )", re.M)


def mboxrd_escape(data: bytes) -> bytes:
    """Quote ``From `` lines mboxrd-style: prefix one ``>`` to ``>*From ``."""
    return _FROM_ESCAPE.sub(rb">\1", data)


_STATUS_LETTERS = (("\\Answered", "A"), ("\\Flagged", "F"), ("\\Deleted", "D"),
                   ("\\Draft", "T"))


def with_status(raw: bytes, flags: Iterable[str]) -> bytes:
    """*raw* (CRLF) with ``Status:`` / ``X-Status:`` headers for *flags*.

    ``Status: RO`` when seen, ``Status: O`` when not; ``X-Status`` carries
    A F D T when any of those flags is set.
    """
    flags = set(flags)
    extra = b"Status: RO\r\n" if "\\Seen" in flags else b"Status: O\r\n"
    x = "".join(letter for flag, letter in _STATUS_LETTERS if flag in flags)
    if x:
        extra += b"X-Status: " + x.encode() + b"\r\n"
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return raw + (b"" if raw.endswith(b"\r\n") or not raw else b"\r\n") + extra
    return raw[: end + 2] + extra + raw[end + 2 :]


def _envelope(item: bytes | GeneratedMessage) -> tuple[bytes, int, str]:
    if isinstance(item, GeneratedMessage):
        raw = item.raw if item.new else with_status(item.raw, item.flags)
        return raw, item.date, item.sender
    date = 0
    end = item.find(b"\r\n\r\n")
    m = re.search(rb"^Date:[ \t]*(.*?)\r?$", item[: end if end >= 0 else len(item)], re.M | re.I)
    if m:
        parsed = email.utils.parsedate_tz(m.group(1).decode("latin-1"))
        if parsed is not None:
            date = int(email.utils.mktime_tz(parsed))
    return item, date, "MAILER-DAEMON"


def write_mbox(fp: BinaryIO, messages: Iterable[bytes | GeneratedMessage], *,
               crlf: bool = False) -> int:
    """Write *messages* to *fp* as an mboxrd file; return how many.

    Items are raw CRLF messages or :class:`GeneratedMessage` records (which
    add Status headers unless new, and carry the From_ line date and
    sender).  Line endings on disk are LF unless *crlf*.  Every message is
    followed by an empty line; a message that does not end in a line break
    gets one.
    """
    count = 0
    eol = b"\r\n" if crlf else b"\n"
    for item in messages:
        raw, date, sender = _envelope(item)
        data = raw if crlf else raw.replace(b"\r\n", b"\n")
        data = mboxrd_escape(data)
        fp.write(b"From " + sender.encode() + b" " + _asctime(date).encode() + eol)
        fp.write(data)
        if not data.endswith(b"\n"):
            fp.write(eol)
        fp.write(eol)
        count += 1
    return count


_MAILDIR_LETTERS = (("\\Draft", "D"), ("\\Flagged", "F"), ("$Forwarded", "P"),
                    ("\\Answered", "R"), ("\\Seen", "S"), ("\\Deleted", "T"))


def write_maildir(root: str, messages: Iterable[GeneratedMessage], *,
                  host: str = "mail.example.org") -> int:
    """Write *messages* into a Maildir++ tree at *root*; return how many.

    Each message goes to its ``folder`` (a Maildir++ subfolder, names in
    modified UTF-7), into ``new/`` if it is new, else ``cur/`` with the
    flags in the ``:2,`` info.  Files have LF line endings and their mtime
    set to the delivery time.
    """
    made: set[tuple[str, ...]] = set()
    r = random.Random(0)
    count = 0
    for m in messages:
        if m.folder:
            d = os.path.join(root, "." + ".".join(encode_modified_utf7(s) for s in m.folder))
        else:
            d = root
        if m.folder not in made:
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            if m.folder:
                open(os.path.join(d, "maildirfolder"), "wb").close()
            made.add(m.folder)
        data = m.raw.replace(b"\r\n", b"\n")
        base = "%d.M%dP%dQ%d.%s,S=%d,W=%d" % (
            m.date, r.randrange(1_000_000), r.randint(1000, 60000), count, host,
            len(data), len(m.raw),
        )
        if m.new:
            path = os.path.join(d, "new", base)
        else:
            letters = "".join(letter for flag, letter in _MAILDIR_LETTERS if flag in m.flags)
            path = os.path.join(d, "cur", f"{base}:2,{letters}")
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (m.date, m.date))
        count += 1
    return count


# ---------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate realistic test mail.")
    ap.add_argument("--count", type=int, required=True, help="number of messages")
    out = ap.add_mutually_exclusive_group(required=True)
    out.add_argument("--mbox", help="write an mboxrd file here")
    out.add_argument("--maildir", help="write a Maildir++ tree here")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    records = generate_records(args.count, args.seed)
    if args.mbox:
        with open(args.mbox, "wb", buffering=1 << 20) as fp:
            n = write_mbox(fp, records)
        target = args.mbox
    else:
        n = write_maildir(args.maildir, records)
        target = args.maildir
    dt = time.perf_counter() - t0
    sys.stdout.write(f"wrote {n} messages to {target} in {dt:.1f}s "
                     f"({n / dt if dt else 0:.0f} msg/s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
