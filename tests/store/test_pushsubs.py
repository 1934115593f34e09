"""The push queue on the key-value interface (``store/pushsubs.py``): one
entry per subscription, states that never go back, ``gen`` so an older
answer never clears a newer change, the due index kept exact."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.store import pushsubs

REC = {"deviceClientId": "d", "url": "https://p.example/", "keys": None, "code": "c", "verified": True,
       "expires": None, "types": None, "states": {}, "vapid": None, "created": 0}

states = st.dictionaries(st.sampled_from(["A1", "A2"]), st.dictionaries(
    st.sampled_from(["Email", "Mailbox", "Thread"]), st.integers(0, 50).map(str), max_size=3), max_size=2)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(states, states, states)
def test_merge_is_monotonic_and_idempotent(a, b, c):
    ab = pushsubs.merge_states(a, b)
    assert pushsubs.merge_states(ab, b) == ab  # a commit seen twice changes nothing
    assert pushsubs.merge_states(pushsubs.merge_states(a, b), c) == pushsubs.merge_states(pushsubs.merge_states(a, c), b)
    for acc, types in list(a.items()) + list(b.items()):
        for name, state in types.items():
            assert int(ab[acc][name]) >= int(state)


def test_queue_entry_lifecycle(store):
    a = store.create_account("alice@example.org", "x")
    with store.kv.write(a) as w:
        p = pushsubs.create(w, a, dict(REC), 1000)
    with store.kv.read() as r:
        assert pushsubs.due(r, 999) == [] and pushsubs.due(r, 1000) == [(1000, a, p)]
        assert pushsubs.entry_of(r, a, p)["verify"] is True
    with store.kv.write(a) as w:
        rec = pushsubs.get(w, a, p)
        assert pushsubs.note_change(w, a, p, rec, {"A1": {"Email": "5"}}, 2000)
        assert not pushsubs.note_change(w, a, p, pushsubs.get(w, a, p), {"A1": {"Email": "4"}}, 2000)
        gen = pushsubs.entry_of(w, a, p)["gen"]
        pushsubs.delivered(w, a, p, "verify", 0)
        assert pushsubs.note_change(w, a, p, pushsubs.get(w, a, p), {"A1": {"Email": "6"}}, 2000)
        pushsubs.delivered(w, a, p, "change", gen)  # an answer to the older push
        assert pushsubs.entry_of(w, a, p)["change"] is True
        assert pushsubs.retry(w, a, p, 9000) == 1
    with store.kv.read() as r:
        assert pushsubs.due(r, 10**9) == [(9000, a, p)]  # moved, not duplicated
        assert pushsubs.next_due(r, 0) == 9000
        assert pushsubs.get(r, a, p)["states"] == {"A1": {"Email": "6"}}
    with store.kv.write(a) as w:
        pushsubs.delivered(w, a, p, "change", pushsubs.entry_of(w, a, p)["gen"])
    with store.kv.read() as r:
        assert pushsubs.entry_of(r, a, p) is None and pushsubs.due(r, 10**9) == []
    with store.kv.write(a) as w:
        assert pushsubs.destroy(w, a, p) and not pushsubs.destroy(w, a, p)


def test_account_deletion_takes_its_subscriptions(store):
    a = store.create_account("alice@example.org", "x")
    with store.kv.write(a) as w:
        pushsubs.create(w, a, dict(REC), 1000)
    store.delete_account("alice@example.org")
    with store.kv.read() as r:
        assert pushsubs.listing(r, a) == [] and list(pushsubs.all_subscriptions(r)) == []
        assert len(pushsubs.due(r, 10**9)) == 1  # a stale index key: the runner drops it
