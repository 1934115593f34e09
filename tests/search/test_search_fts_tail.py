"""The full-text index's term records (``ftstok``, made at ingest), its gram dictionary
(``ftsgram``) and the old-store upgrade: answers equal a brute-force scan in every index
state, the unindexed tail is matched without reading message text, and a substring
lookup does not scan the term dictionary (docs/search.md, "Full-text index")."""

from __future__ import annotations

import string

import pytest
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.mail.ops import prepare, store_prepared
from dualmail.model.terms import WORD, _fold_words, email_terms, tokens
from dualmail.search import JMAP, fts, search
from dualmail.search.collate import MAX_TOKEN, fold
from dualmail.search.query import Contains
from dualmail.store import codec, keys as K
from dualmail.store.kv import prefix_end
from dualmail.store.store import open_store
from tests.search.corpus import INBOX, msg

# Few letters, so substrings of one text often occur in another; accents precomposed
# and decomposed, a case pair, an astral letter, a mark after a space
PIECES = ["ab", "ba", "abc", "cab", "q", "zz", "\u00e9", "e\u0301", "\u00df", "SS", "\U0001d400x",
          "42", "a_b", " \u0301", "-", ".", " ", "  ", "\n"]
texts = st.lists(st.sampled_from(PIECES), min_size=0, max_size=14).map("".join)


class Counting:
    """A KVRead that counts gets per table and range keys read per table."""

    def __init__(self, kv):
        self.kv = kv
        self.gets: dict[str, int] = {}
        self.ranged: dict[str, int] = {}

    def get(self, table, key):
        self.gets[table] = self.gets.get(table, 0) + 1
        return self.kv.get(table, key)

    def get_many(self, table, keys):
        self.gets[table] = self.gets.get(table, 0) + len(keys)
        return self.kv.get_many(table, keys)

    def get_many_each(self, reqs):
        return [self.get_many(table, keys) for table, keys in reqs]

    def range(self, table, start, stop=None, reverse=False, expect=None):
        for item in self.kv.range(table, start, stop, reverse=reverse, expect=expect):
            self.ranged[table] = self.ranged.get(table, 0) + 1
            yield item

    def scan_many(self, reqs):
        from dualmail.store.kv import scan_each
        return scan_each(self, reqs)  # each row counted by ``range``

    def __getattr__(self, name):
        return getattr(self.kv, name)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES + list(string.ascii_letters) + ["\u0301", "\u00c5", "\u4f1a"]),
                max_size=20).map("".join) | st.text(max_size=30))
def test_fast_tokenizer_equals_the_word_pattern(s):
    """The ASCII/BMP fast paths and ``fold`` without white-space collapsing give exactly
    the terms of ``WORD`` on the folded text (the query side uses WORD)."""
    want = {m[:MAX_TOKEN] for m in WORD.findall(fold(s))}
    assert tokens(fold(s)) == want
    assert tokens(_fold_words(s)) == want
    assert email_terms(s, "") == want


def _legacy(store, account):
    """Make the store look as before term records, grams and subject postings: no ftstok,
    no ftsgram, no ftss, no flag, no subject watermark."""
    def run(w):
        p = K.acct(account)
        for table in ("ftstok", "ftsgram", "ftss"):
            for k, _v in list(w.range(table, p, prefix_end(p))):
                w.delete(table, k)
        for k, _v in list(w.range("ftsmeta", p, prefix_end(p))):
            if k != p:
                w.delete("ftsmeta", k)
    store.kv.run_write(run)


def _queries(corpus: list[tuple[str, str]], extra: list[str]) -> list[str]:
    out = list(extra)
    for subject, body in corpus:
        for t in (subject, body):
            for i in range(0, len(t), 3):
                out.append(t[i:i + 1 + i % 7])
    return [q for q in dict.fromkeys(out) if fold(q).strip()]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=8), st.integers(0, 8),
       st.sampled_from(["new", "legacy", "legacy-upgraded", "legacy-subjects-partly"]), st.lists(texts, max_size=4))
def test_index_answers_equal_a_brute_force_scan(corpus, indexed, state, extra):
    """Text, body and subject searches equal a scan in every index state: new; older
    than term records, grams and subject postings; upgraded; subject postings part-way
    through their upgrade (RFC 3501 §6.4.4: SUBJECT is a substring of the field)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(tmp + "/data", sync=False)
        try:
            a = store.create_account("alice@example.org", "secret")
            with store.write(a) as tx:
                for subject, body in corpus:
                    raw = msg(f"From: x@y\nSubject: {subject.replace(chr(10), ' ')}", body + "\n")
                    store_prepared(tx, prepare(raw, (), 1_700_000_000), [INBOX])
            fts.index_pending(store, a, indexed)
            if state != "new":
                _legacy(store, a)
                if state == "legacy-upgraded":
                    while fts.upgrade_grams(store, a, 7):
                        pass
                    while fts.upgrade_subjects(store, a, 2):
                        pass
                elif state == "legacy-subjects-partly":
                    fts.upgrade_subjects(store, a, 1)
                fts.index_pending(store, a, 2)
            with store.read(a) as r:
                emails = [e for e in r.received_order(None, reverse=False)]
                folded = {e: (fold(r.text(e)[0]), fold(r.text(e)[1])) for e in emails}
                srch = {e: r.kv.get("srch", K.email(a, e)) for e in emails}
                for q in _queries(corpus, extra):
                    fq = fold(q)
                    cands = fts.candidates(r.kv, a, fq)
                    want = {e for e, (h, b) in folded.items() if fq in h or fq in b}
                    assert cands is None or want <= cands, (q, state)
                    got = search(r, JMAP, Contains("body", q))
                    assert got == sorted(e for e, (_h, b) in folded.items() if fq in b), (q, state)
                    assert search(r, JMAP, Contains("text", q)) == sorted(want), (q, state)
                    subj = [e for e in emails if fq in fold(codec.loads(srch[e])["h"].get("subject", ""))]
                    assert search(r, JMAP, Contains("subject", q)) == sorted(subj), (q, state)
                assert all(srch.values())
        finally:
            store.close()


def test_unindexed_tail_is_matched_without_reading_text(store, account):
    """A query while the indexer catches up reads the term records of the mail above the
    watermark, and the text (never the raw message) of the candidates only."""
    with store.write(account) as tx:
        for i in range(60):
            word = "quetzalcoatlus" if i == 41 else f"ordinary{i}"
            store_prepared(tx, prepare(msg(f"From: a@b\nSubject: n{i}", f"a {word} day\n"), (), 1), [INBOX])
    fts.index_pending(store, account, 20)  # 40 not yet indexed
    with store.read(account) as r:
        assert len(fts.unindexed(r.kv, account)) == 40
        r.kv = counting = Counting(r.kv)
        got = search(r, JMAP, Contains("jmaptext", "etzalcoat"))
        assert len(got) == 1
        assert counting.gets.get("text", 0) == 1  # the one candidate's text, to verify it
        assert counting.gets.get("blob", 0) == 0 and counting.gets.get("summary", 0) == 0
        assert counting.gets["ftstok"] == 40


def test_substring_lookup_does_not_scan_the_term_dictionary(store, account):
    with store.write(account) as tx:
        for i in range(200):
            body = " ".join(f"w{i}x{j}" for j in range(20)) + (" quetzalcoatlus" if i == 150 else "")
            store_prepared(tx, prepare(msg("From: a@b\nSubject: s", body + "\n"), (), 1), [INBOX])
    fts.index_all(store, account)
    with store.read(account) as r:
        assert fts.grams_ready(r.kv, account)
        dictionary = sum(1 for _ in r.kv.range("fts", K.acct(account), prefix_end(K.acct(account))))
        assert dictionary > 4000
        r.kv = counting = Counting(r.kv)
        assert len(search(r, JMAP, Contains("jmaptext", "tzalco"))) == 1
        assert counting.ranged.get("fts", 0) <= 2  # the one term's postings
        assert counting.ranged.get("ftsgram", 0) < 20


def test_old_index_is_upgraded_in_slices_and_answers_stay_the_same(store, account):
    with store.write(account) as tx:
        for i in range(30):
            store_prepared(tx, prepare(msg("From: a@b\nSubject: s", f"alpha{i} beta{i % 3} gamma\n"), (), 1), [INBOX])
    fts.index_all(store, account)
    _legacy(store, account)

    def answers():
        with store.read(account) as r:
            return [search(r, JMAP, Contains("body", q)) for q in ("pha1", "eta2", "amm", "lpha2", "a")]

    before = answers()
    with store.read(account) as r:
        assert not fts.grams_ready(r.kv, account)
    slices = 0
    while fts.upgrade_grams(store, account, 10):
        slices += 1
    assert slices >= 3
    with store.read(account) as r:
        assert fts.grams_ready(r.kv, account)
        assert r.kv.get("ftsmeta", K.acct(account) + b"G") is None
    assert answers() == before
    assert fts.upgrade_grams(store, account) == 0


@pytest.mark.parametrize("hint", ["none", "below", "equal", "above"])
def test_the_watermark_hint_never_changes_answers_and_a_stale_one_reads_little(store, account, hint):
    """The first look scans the Emails above the watermark as last seen (``_WM_HINT``),
    with the watermark itself: a hint below it (more mail indexed since) or above it (an
    index rebuilt, another store) still gives exactly the tail, and never makes the query
    read the mailbox's Email records."""
    with store.write(account) as tx:
        for i in range(300):
            word = "quetzalcoatlus" if i in (7, 299) else f"ordinary{i}"
            store_prepared(tx, prepare(msg(f"From: a@b\nSubject: n{i}", f"a {word} day\n"), (), 1), [INBOX])
    fts.index_pending(store, account, 290)  # the last 10 above the watermark
    with store.read(account) as r:
        wm = fts.watermark(r.kv, account)
    assert wm > 200
    fts._WM_HINT.pop(account, None)
    if hint != "none":
        fts._WM_HINT[account] = {"below": 1, "equal": wm, "above": wm + 5}[hint]
    with store.read(account) as r:
        r.kv = counting = Counting(r.kv)
        got = search(r, JMAP, Contains("body", "etzalcoat"))
        assert len(got) == 2
        assert counting.ranged.get("email", 0) <= fts._TAIL_PAGE + 10
    assert fts._WM_HINT[account] == wm


class Looks(Counting):
    """Counting, and the batched reads (one round trip each on PostgreSQL)."""

    def __init__(self, kv):
        super().__init__(kv)
        self.looks = 0

    def scan_many(self, reqs):
        self.looks += 1
        return super().scan_many(reqs)

    def get_many_each(self, reqs):
        self.looks += 1
        from dualmail.store.kv import get_each
        return get_each(self, reqs)


def test_a_word_search_is_two_looks_when_the_word_is_its_only_term(store, account):
    """The first look holds the word's postings as a whole term: a search for a word
    found only as itself is that look and the candidates' records; a run inside other
    terms adds one look for their postings."""
    from dualmail.search import MailboxScope
    from dualmail.search.query import Header
    with store.write(account) as tx:
        for i in range(40):
            subject = "quetzalcoatlus" if i % 10 == 3 else f"plain{i}"
            store_prepared(tx, prepare(msg(f"From: a@b\nSubject: {subject}", "a day\n"), (), 1), [INBOX])
        store_prepared(tx, prepare(msg("From: a@b\nSubject: quetzalcoatlusbones", "x\n"), (), 1), [INBOX])
    fts.index_all(store, account)
    with store.read(account) as r:  # the watermark as last seen (``_WM_HINT``) is this one's
        search(r, MailboxScope(INBOX), Header("Subject", "warm"))
    for q, looks, hits in (("quetzalcoatlusbones", 2, 1), ("quetzalcoatlus", 3, 5), ("tzalcoatl", 3, 5)):
        with store.read(account) as r:
            r.kv = counting = Looks(r.kv)
            got = search(r, MailboxScope(INBOX), Header("Subject", q))
            assert len(got) == hits, q
            assert counting.looks == looks, q


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab\u00e9", min_size=1, max_size=MAX_TOKEN + 3), max_size=6),
       st.sampled_from(["infix", "suffix"]))
def test_a_cut_term_is_found_as_a_python_pass_finds_it(terms, mode):
    """``terms_match`` of an infix/suffix run finds a term cut to MAX_TOKEN (which may hold
    the run past its cut) with one compiled search: the same answer as a pass over the
    terms (``unpack_terms`` form: "\\n"-delimited)."""
    joined = "\n" + "\n".join(terms) + "\n"
    match = fts._Match([], "zz", mode)  # a run no term holds: only a cut term can match
    assert match.terms_match(joined) == any(len(t) >= MAX_TOKEN for t in terms)


def _subject_mail(store, account, n, hits):
    with store.write(account) as tx:
        for i in range(n):
            subject = f"the quarterly report {i}" if i in hits else f"note {i}"
            store_prepared(tx, prepare(msg(f"From: a@b\nSubject: {subject}", "the quarterly figures\n"), (), 1),
                           [INBOX])


def test_a_subject_search_reads_only_the_emails_whose_subject_holds_the_word(store, account):
    """The word is in every body and in 3 subjects: the subject postings (``ftss``) give
    the 3 Emails, so 3 search records are read, not 200."""
    _subject_mail(store, account, 200, {5, 77, 150})
    fts.index_all(store, account)
    with store.read(account) as r:
        assert fts.subject_watermark(r.kv, account) == fts.watermark(r.kv, account) > 0
        r.kv = counting = Counting(r.kv)
        got = search(r, JMAP, Contains("subject", "quarterly"))
        assert len(got) == 3
        assert counting.gets.get("srch", 0) == 3
        assert counting.gets.get("email", 0) == 3
        counting.gets.clear()
        assert len(search(r, JMAP, Contains("subject", "uarter"))) == 3  # infix: the grams
        assert counting.gets.get("srch", 0) == 3
        assert len(search(r, JMAP, Contains("body", "quarterly"))) == 200


def test_subject_postings_of_an_older_index_are_filled_in_slices(store, account):
    """An index made before ``ftss``: SUBJECT answers come from the whole-text postings
    until the upgrade has caught up (no wrong answer part-way), the upgrade chases mail
    indexed meanwhile, and afterwards the subject postings move with the index."""
    _subject_mail(store, account, 50, {3, 30})
    fts.index_all(store, account)
    _legacy(store, account)

    def answer():
        with store.read(account) as r:
            return search(r, JMAP, Contains("subject", "quarterly"))

    want = answer()
    assert len(want) == 2
    assert fts.upgrade_subjects(store, account, 20) == 20
    _subject_mail(store, account, 10, {4})  # new mail indexed while not complete:
    assert fts.index_pending(store, account, 100) == 10  # no subject postings yet
    with store.read(account) as r:
        assert fts.subject_watermark(r.kv, account) == 20 < fts.watermark(r.kv, account) == 60
        p = K.fts(account, b"quarterly")
        assert [e for _k, v in r.kv.range("ftss", p, prefix_end(p)) for e in fts._unpack(v)] == [4]  # of the first 20
    assert len(answer()) == 3
    slices = 1
    while fts.upgrade_subjects(store, account, 20):
        slices += 1
    assert slices == 3
    with store.read(account) as r:
        assert fts.subject_watermark(r.kv, account) == fts.watermark(r.kv, account) == 60
        p = K.fts(account, b"quarterly")
        posted = [e for _k, v in r.kv.range("ftss", p, prefix_end(p)) for e in fts._unpack(v)]
        assert posted == sorted(posted) and len(posted) == 3  # ascending, each once
    assert len(answer()) == 3
    _subject_mail(store, account, 5, {2})
    fts.index_all(store, account)
    with store.read(account) as r:
        assert fts.subject_watermark(r.kv, account) == fts.watermark(r.kv, account) == 65
        r.kv = counting = Counting(r.kv)
        assert len(search(r, JMAP, Contains("subject", "quarterly"))) == 4
        assert counting.gets.get("srch", 0) == 4
