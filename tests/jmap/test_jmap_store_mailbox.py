"""Mailbox (RFC 8621 §2) against the real store: /get /set /changes /query
/queryChanges, every SetError of §2.5, and the IMAP view of each change
(CONTRACT §3, §4)."""

from __future__ import annotations

import pytest

from tests.jmap.jmap_store_util import ARCHIVE, DRAFTS, INBOX, SENT, TRASH, aid, add_email, mid

COUNTS = ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]


def get_all(client, alice):
    return client.call("Mailbox/get", {"ids": None}, alice)


def state(client, alice):
    return get_all(client, alice)["state"]


def set_(client, alice, **args):
    return client.call("Mailbox/set", args, alice)


def snapshot(store, alice):
    with store.read(alice) as r:
        return r.highest_modseq, sorted((m["id"], m["name"], m["parent"], m["role"]) for m in r.mailboxes())


# -- /get ----------------------------------------------------------------------


def test_get_default_mailboxes(client, alice, store):
    result = get_all(client, alice)
    by_role = {m["role"]: m for m in result["list"]}
    assert set(by_role) == {"inbox", "drafts", "sent", "trash", "junk", "archive"}
    inbox = by_role["inbox"]
    assert inbox == {
        "id": mid(INBOX), "name": "INBOX", "parentId": None, "role": "inbox", "sortOrder": 1,
        "totalEmails": 0, "unreadEmails": 0, "totalThreads": 0, "unreadThreads": 0, "isSubscribed": True,
        "myRights": {"mayReadItems": True, "mayAddItems": True, "mayRemoveItems": True, "maySetSeen": True,
                     "maySetKeywords": True, "mayCreateChild": True, "mayRename": False, "mayDelete": False,
                     "maySubmit": True},
    }
    assert all(by_role["trash"]["myRights"].values())
    with store.read(alice) as r:
        assert result["state"] == str(r.state("Mailbox"))
    assert result["notFound"] == []


def test_get_some_properties_and_not_found(client, alice):
    result = client.call("Mailbox/get", {"ids": [mid(SENT), "M999", "junk"], "properties": ["name"]}, alice)
    assert result["list"] == [{"id": mid(SENT), "name": "Sent"}]
    assert sorted(result["notFound"]) == ["M999", "junk"]


def test_counts_are_the_store_counters(client, alice, store):
    add_email(store, alice, (INBOX,), received=1)
    add_email(store, alice, (INBOX, ARCHIVE), keywords=["$seen"], received=2)
    add_email(store, alice, (DRAFTS,), keywords=["$draft"], received=3)
    lst = {m["id"]: m for m in get_all(client, alice)["list"]}
    assert [lst[mid(INBOX)][k] for k in COUNTS] == [2, 1, 2, 1]
    assert [lst[mid(ARCHIVE)][k] for k in COUNTS] == [1, 0, 1, 0]
    assert [lst[mid(DRAFTS)][k] for k in COUNTS] == [1, 0, 1, 0]  # $draft is not unread


def test_imap_deleted_membership_is_not_counted(client, alice, store):
    e = add_email(store, alice, (INBOX,))
    with store.write(alice) as tx:
        tx.set_deleted(e, INBOX, True)
    inbox = client.call("Mailbox/get", {"ids": [mid(INBOX)]}, alice)["list"][0]
    assert inbox["totalEmails"] == 0 and inbox["totalThreads"] == 0


# -- /set create ----------------------------------------------------------------


def test_create_with_reference_to_parent(client, alice, store):
    old = state(client, alice)
    result = set_(client, alice, create={
        "child": {"name": "2024", "parentId": "#parent"},
        "parent": {"name": "Projects", "isSubscribed": False, "sortOrder": 10},
    })
    assert result["oldState"] == old
    assert int(result["newState"]) == int(old) + 1  # one transaction, one modseq
    assert result["notCreated"] is None
    parent, child = result["created"]["parent"], result["created"]["child"]
    assert parent["parentId"] is None and parent["role"] is None
    assert parent["totalEmails"] == 0 and parent["myRights"]["mayDelete"] is True
    assert "name" not in parent and "sortOrder" not in parent  # only what the client did not give
    assert child["isSubscribed"] is True and child["sortOrder"] == 0
    with store.read(alice) as r:  # IMAP sees Projects/2024
        n = r.mailbox_by_path(["Projects", "2024"])
        assert mid(n) == child["id"]
        assert r.mailbox(r.mailbox_by_path(["Projects"]))["sub"] is False
        assert r.mailbox(n)["hms"] == int(result["newState"])


def test_duplicate_name_names_the_existing_mailbox(client, alice, store):
    """RFC 8621 §2.1 sibling names are unique; alreadyExists (RFC 8620 §5.4) carries existingId."""
    with store.read(alice) as r:
        sent = r.mailbox_by_path(["Sent"])
    result = set_(client, alice, create={"k": {"name": "Sent"}})
    assert result["notCreated"]["k"]["existingId"] == f"M{sent}"


@pytest.mark.parametrize("obj, error, props", [
    ({"name": "Sent"}, "alreadyExists", ["name"]),  # duplicate sibling name
    ({"name": "inbox"}, "alreadyExists", ["name"]),  # INBOX is case-insensitive
    ({"name": "a/b"}, "invalidProperties", ["name"]),  # the IMAP separator
    ({"name": ""}, "invalidProperties", ["name"]),
    ({"name": "x" * 256}, "invalidProperties", ["name"]),
    ({}, "invalidProperties", ["name"]),
    ({"name": 5}, "invalidProperties", ["name"]),
    ({"name": "New", "parentId": "M999"}, "invalidProperties", ["parentId"]),
    ({"name": "New", "role": "bogus"}, "invalidProperties", ["role"]),
    ({"name": "New", "role": "trash"}, "invalidProperties", ["role"]),  # already used
    ({"name": "New", "sortOrder": -1}, "invalidProperties", ["sortOrder"]),
    ({"name": "New", "sortOrder": 2**31}, "invalidProperties", ["sortOrder"]),
    ({"name": "New", "isSubscribed": "yes"}, "invalidProperties", ["isSubscribed"]),
    ({"name": "New", "totalEmails": 3}, "invalidProperties", ["totalEmails"]),  # server-set
    ({"name": "New", "myRights": {}}, "invalidProperties", ["myRights"]),
    ({"name": "New", "colour": "red"}, "invalidProperties", ["colour"]),
    ({"name": "Sent", "role": "bogus", "sortOrder": -1}, "invalidProperties", ["role", "sortOrder"]),
])
def test_create_errors_change_nothing(client, alice, store, obj, error, props):
    before_state = state(client, alice)
    before = snapshot(store, alice)
    result = set_(client, alice, create={"k": obj})
    assert result["created"] is None
    err = result["notCreated"]["k"]
    assert err["type"] == error
    assert err["properties"] == props
    assert result["newState"] == result["oldState"] == before_state
    assert snapshot(store, alice) == before


def test_one_bad_create_does_not_spoil_the_others(client, alice, store):
    result = set_(client, alice, create={"bad": {"name": "Sent"}, "good": {"name": "Receipts"}})
    assert list(result["created"]) == ["good"] and list(result["notCreated"]) == ["bad"]
    with store.read(alice) as r:
        assert r.mailbox_by_path(["Receipts"]) is not None


def test_role_can_be_given_to_a_new_mailbox(client, alice):
    created = set_(client, alice, create={"k": {"name": "Flagged", "role": "flagged"}})["created"]["k"]
    got = client.call("Mailbox/get", {"ids": [created["id"]]}, alice)["list"][0]
    assert got["role"] == "flagged"


# -- /set update ------------------------------------------------------------------


def test_rename_and_move_keep_id_and_uidvalidity(client, alice, store):
    with store.read(alice) as r:
        uidvalidity = r.mailbox(ARCHIVE)["uidvalidity"]
    result = set_(client, alice, update={mid(ARCHIVE): {"name": "Old mail", "parentId": mid(TRASH)}})
    assert result["updated"] == {mid(ARCHIVE): None}
    with store.read(alice) as r:
        assert r.mailbox_path(ARCHIVE) == ["Trash", "Old mail"]  # IMAP RENAME
        assert r.mailbox(ARCHIVE)["uidvalidity"] == uidvalidity
    got = client.call("Mailbox/get", {"ids": [mid(ARCHIVE)]}, alice)["list"][0]
    assert (got["name"], got["parentId"], got["role"]) == ("Old mail", mid(TRASH), "archive")


def test_subscription_role_and_order_updates(client, alice, store):
    result = set_(client, alice, update={mid(ARCHIVE): {"isSubscribed": False, "role": None, "sortOrder": 99}})
    assert result["notUpdated"] is None
    with store.read(alice) as r:
        rec = r.mailbox(ARCHIVE)
        assert (rec["sub"], rec["role"], rec["sort"]) == (False, None, 99)


@pytest.mark.parametrize("target, patch, error, props", [
    (TRASH, {"name": "Sent"}, "alreadyExists", ["name"]),
    (TRASH, {"name": "x/y"}, "invalidProperties", ["name"]),
    (TRASH, {"parentId": "M999"}, "invalidProperties", ["parentId"]),
    (TRASH, {"role": "sent"}, "invalidProperties", ["role"]),
    (TRASH, {"role": "nope"}, "invalidProperties", ["role"]),
    (TRASH, {"totalEmails": 7}, "invalidProperties", ["totalEmails"]),
    (TRASH, {"myRights/mayDelete": False}, "invalidProperties", ["myRights"]),
    (TRASH, {"isSubscribed": None}, "invalidProperties", ["isSubscribed"]),
    (TRASH, {"name/x": 1}, "invalidPatch", None),
    (INBOX, {"name": "Post"}, "forbidden", None),
    (INBOX, {"parentId": mid(ARCHIVE)}, "forbidden", None),
    (INBOX, {"role": None}, "invalidProperties", ["role"]),
])
def test_update_errors_change_nothing(client, alice, store, target, patch, error, props):
    before_state = state(client, alice)
    before = snapshot(store, alice)
    result = set_(client, alice, update={mid(target): patch})
    err = result["notUpdated"][mid(target)]
    assert err["type"] == error, err
    assert err.get("properties") == props
    assert result["newState"] == before_state
    assert snapshot(store, alice) == before


def test_no_parent_cycles(client, alice, store):
    created = set_(client, alice, create={"a": {"name": "A"}, "b": {"name": "B", "parentId": "#a"}})["created"]
    a, b = created["a"]["id"], created["b"]["id"]
    before = snapshot(store, alice)
    for target, parent in ((a, b), (a, a)):
        result = set_(client, alice, update={target: {"parentId": parent}})
        assert result["notUpdated"][target]["type"] == "invalidProperties"
        assert result["notUpdated"][target]["properties"] == ["parentId"]
    assert snapshot(store, alice) == before


def test_update_unknown_mailbox(client, alice):
    result = set_(client, alice, update={"M999": {"name": "x"}})
    assert result["notUpdated"]["M999"]["type"] == "notFound"


def test_if_in_state_mismatch(client, alice, store):
    before = snapshot(store, alice)
    error = client.error("Mailbox/set", {"accountId": aid(alice), "ifInState": "999",
                                         "create": {"k": {"name": "New"}}})
    assert error["type"] == "stateMismatch"
    assert snapshot(store, alice) == before


# -- /set destroy -------------------------------------------------------------------


def test_destroy_errors(client, alice, store):
    created = set_(client, alice, create={"p": {"name": "P"}, "c": {"name": "C", "parentId": "#p"}})["created"]
    add_email(store, alice, (TRASH,))
    before_state = state(client, alice)
    before = snapshot(store, alice)
    result = set_(client, alice, destroy=[created["p"]["id"], mid(TRASH), mid(INBOX), "M999"])
    assert result["destroyed"] is None
    errors = {k: v["type"] for k, v in result["notDestroyed"].items()}
    assert errors == {created["p"]["id"]: "mailboxHasChild", mid(TRASH): "mailboxHasEmail",
                      mid(INBOX): "forbidden", "M999": "notFound"}
    assert result["newState"] == before_state
    assert snapshot(store, alice) == before


def test_destroy_with_on_destroy_remove_emails(client, alice, store):
    only_here = add_email(store, alice, (TRASH,), received=1)
    also_inbox = add_email(store, alice, (TRASH, INBOX), received=2)
    result = set_(client, alice, destroy=[mid(TRASH)], onDestroyRemoveEmails=True)
    assert result["destroyed"] == [mid(TRASH)]
    with store.read(alice) as r:
        assert r.mailbox(TRASH) is None
        assert r.email(only_here) is None  # in no other mailbox: destroyed
        assert list(r.email(also_inbox)["mbx"]) == [str(INBOX)]
        assert r.mailbox(INBOX)["counts"]["total"] == 1
    assert client.call("Mailbox/get", {"ids": [mid(TRASH)]}, alice)["notFound"] == [mid(TRASH)]


def test_destroy_empty_mailbox_and_its_changes(client, alice):
    s0 = state(client, alice)
    result = set_(client, alice, destroy=[mid(ARCHIVE)])
    assert result["destroyed"] == [mid(ARCHIVE)]
    changes = client.call("Mailbox/changes", {"sinceState": s0}, alice)
    assert changes["destroyed"] == [mid(ARCHIVE)] and changes["newState"] == result["newState"]


# -- /changes ------------------------------------------------------------------------


def test_changes_after_create_and_rename(client, alice):
    s0 = state(client, alice)
    new = set_(client, alice, create={"k": {"name": "New"}})["created"]["k"]["id"]
    set_(client, alice, update={mid(SENT): {"name": "Sent Items"}})
    result = client.call("Mailbox/changes", {"sinceState": s0}, alice)
    assert result["created"] == [new] and result["updated"] == [mid(SENT)] and result["destroyed"] == []
    assert result["updatedProperties"] is None  # more than counts changed
    assert result["hasMoreChanges"] is False
    assert result["newState"] == state(client, alice)


def test_changes_paging_is_exact(client, alice):
    s0 = state(client, alice)
    set_(client, alice, create={f"k{i}": {"name": f"Box {i}"} for i in range(5)})
    seen, since = [], s0
    for _ in range(10):
        result = client.call("Mailbox/changes", {"sinceState": since, "maxChanges": 2}, alice)
        assert len(result["created"]) <= 2
        seen += result["created"]
        since = result["newState"]
        if not result["hasMoreChanges"]:
            break
    assert len(seen) == len(set(seen)) == 5
    assert since == state(client, alice)


def test_changes_from_unknown_state(client, alice):
    for bad in ("999999", "junk", "1.x"):
        error = client.error("Mailbox/changes", {"accountId": aid(alice), "sinceState": bad})
        assert error["type"] == "cannotCalculateChanges"


def test_imap_store_flag_is_a_counts_only_mailbox_change(client, alice, store):
    """Cross-protocol (CONTRACT §4): an IMAP STORE \\Seen (a store keyword
    change) is a Mailbox change with updatedProperties = the counts, and the
    Mailbox state equals the mailbox's HIGHESTMODSEQ."""
    e = add_email(store, alice, (INBOX,))
    s0 = state(client, alice)
    with store.write(alice) as tx:  # what IMAP STORE +FLAGS (\Seen) does
        tx.set_keywords(e, ["$seen"])
    responses = client.api([
        ["Mailbox/changes", {"accountId": aid(alice), "sinceState": s0}, "0"],
        ["Mailbox/get", {"accountId": aid(alice),
                         "#ids": {"resultOf": "0", "name": "Mailbox/changes", "path": "/updated"},
                         "#properties": {"resultOf": "0", "name": "Mailbox/changes", "path": "/updatedProperties"}},
         "1"],
    ])
    changes, got = responses[0][1], responses[1][1]
    assert changes["updated"] == [mid(INBOX)] and changes["created"] == changes["destroyed"] == []
    assert changes["updatedProperties"] == COUNTS
    assert got["list"] == [{"id": mid(INBOX), "totalEmails": 1, "unreadEmails": 0, "totalThreads": 1,
                            "unreadThreads": 0}]
    with store.read(alice) as r:
        hms = r.mailbox(INBOX)["hms"]
    assert changes["newState"] == got["state"] == str(hms)


def test_counts_change_after_rename_is_not_counts_only(client, alice, store):
    e = add_email(store, alice, (INBOX,))
    s0 = state(client, alice)
    set_(client, alice, update={mid(INBOX): {"sortOrder": 5}})
    with store.write(alice) as tx:
        tx.set_keywords(e, ["$seen"])
    assert client.call("Mailbox/changes", {"sinceState": s0}, alice)["updatedProperties"] is None


@pytest.mark.parametrize("other", ["create", "destroy", "rename"])
def test_counts_change_with_another_mailbox_created_destroyed_or_renamed(client, alice, store, other):
    """RFC 8621 §2.2: updatedProperties lists the counts only when nothing but counts
    changed since the old state; a Mailbox created, destroyed or renamed in the same
    window while INBOX's counts change makes it null."""
    e = add_email(store, alice, (INBOX,))
    s0 = state(client, alice)
    if other == "create":
        set_(client, alice, create={"k": {"name": "New"}})
    elif other == "destroy":
        set_(client, alice, destroy=[mid(ARCHIVE)])
    else:
        set_(client, alice, update={mid(ARCHIVE): {"name": "Old"}})
    with store.write(alice) as tx:  # what IMAP STORE +FLAGS (\Seen) does
        tx.set_keywords(e, ["$seen"])
    result = client.call("Mailbox/changes", {"sinceState": s0}, alice)
    assert mid(INBOX) in result["updated"]
    assert result["updatedProperties"] is None
    # the next window holds counts only again
    s1 = result["newState"]
    with store.write(alice) as tx:
        tx.set_keywords(e, [])
    assert client.call("Mailbox/changes", {"sinceState": s1}, alice)["updatedProperties"] == COUNTS


# -- /query ----------------------------------------------------------------------------


@pytest.fixture
def tree(client, alice):
    """Projects(sort 10) > [b-side, A-side(unsubscribed)], Work(sort 3)."""
    created = set_(client, alice, create={
        "p": {"name": "Projects", "sortOrder": 10},
        "b": {"name": "b-side", "parentId": "#p"},
        "a": {"name": "A-side", "parentId": "#p", "isSubscribed": False},
        "w": {"name": "Work", "sortOrder": 3},
    })["created"]
    return {k: v["id"] for k, v in created.items()}


def query(client, alice, **args):
    return client.call("Mailbox/query", args, alice)


def test_query_filters(client, alice, tree):
    assert query(client, alice, filter={"parentId": tree["p"]}, sort=[{"property": "name"}])["ids"] == \
        [tree["a"], tree["b"]]
    top = query(client, alice, filter={"parentId": None})["ids"]
    assert tree["p"] in top and tree["w"] in top and tree["a"] not in top
    assert query(client, alice, filter={"role": "trash"})["ids"] == [mid(TRASH)]
    no_role = set(query(client, alice, filter={"role": None})["ids"])
    assert no_role == set(tree.values())
    assert len(query(client, alice, filter={"hasAnyRole": True})["ids"]) == 6
    assert query(client, alice, filter={"isSubscribed": False})["ids"] == [tree["a"]]
    assert set(query(client, alice, filter={"name": "SIDE"})["ids"]) == {tree["a"], tree["b"]}
    both = {"operator": "AND", "conditions": [{"name": "side"}, {"isSubscribed": True}]}
    assert query(client, alice, filter=both)["ids"] == [tree["b"]]
    not_ = {"operator": "NOT", "conditions": [{"hasAnyRole": True}]}
    assert set(query(client, alice, filter=not_)["ids"]) == set(tree.values())


def test_query_sorts(client, alice, tree):
    result = query(client, alice, filter={"parentId": None}, sort=[{"property": "sortOrder", "isAscending": False}],
                   calculateTotal=True)
    assert result["ids"][0] == tree["p"] and result["total"] == 8
    names = query(client, alice, filter={"hasAnyRole": True}, sort=[{"property": "name"}])["ids"]
    assert names == [mid(ARCHIVE), mid(DRAFTS), mid(INBOX), mid(5), mid(SENT), mid(TRASH)]
    default = query(client, alice, filter={"parentId": None})["ids"]
    assert default[:6] == [mid(INBOX), mid(DRAFTS), mid(SENT), tree["w"], mid(TRASH), mid(5)]


def test_query_sort_as_tree(client, alice, tree):
    ids = query(client, alice, sort=[{"property": "name"}], sortAsTree=True)["ids"]
    # children right after their parent, sorted among themselves
    assert ids == [mid(ARCHIVE), mid(DRAFTS), mid(INBOX), mid(5), tree["p"], tree["a"], tree["b"], mid(SENT),
                   mid(TRASH), tree["w"]]
    ids = query(client, alice, sort=[{"property": "name", "isAscending": False}], sortAsTree=True)["ids"]
    assert ids[:5] == [tree["w"], mid(TRASH), mid(SENT), tree["p"], tree["b"]]


def test_query_filter_as_tree(client, alice, tree):
    flat = query(client, alice, filter={"name": "side"})["ids"]
    assert set(flat) == {tree["a"], tree["b"]}
    # their parent "Projects" does not match, so as a tree nothing does
    assert query(client, alice, filter={"name": "side"}, filterAsTree=True)["ids"] == []
    either = {"operator": "OR", "conditions": [{"name": "side"}, {"name": "Projects"}]}
    assert set(query(client, alice, filter=either, filterAsTree=True)["ids"]) == {tree["p"], tree["a"], tree["b"]}


@pytest.mark.parametrize("args, error", [
    ({"filter": {"colour": "red"}}, "unsupportedFilter"),
    ({"filter": {"name": 5}}, "invalidArguments"),
    ({"filter": {"hasAnyRole": "yes"}}, "invalidArguments"),
    ({"sort": [{"property": "totalEmails"}]}, "unsupportedSort"),
    ({"sortAsTree": "yes"}, "invalidArguments"),
    ({"anchor": "M999"}, "anchorNotFound"),
])
def test_query_errors(client, alice, args, error):
    assert client.error("Mailbox/query", {"accountId": aid(alice), **args})["type"] == error


def test_query_state_and_window(client, alice, tree):
    result = query(client, alice, position=2, limit=3)
    assert len(result["ids"]) == 3 and result["position"] == 2
    assert result["queryState"] == state(client, alice)
    assert result["canCalculateChanges"] is True
    assert query(client, alice, sortAsTree=True)["canCalculateChanges"] is False


# -- /queryChanges -----------------------------------------------------------------


def apply_query_changes(old: list[str], changes: dict) -> list[str]:
    """What a client does with a /queryChanges response (RFC 8620 §5.6)."""
    new = [i for i in old if i not in set(changes["removed"])]
    for item in changes["added"]:
        new.insert(item["index"], item["id"])
    return new


def test_query_changes_patch_gives_new_results(client, alice, tree, store):
    args = {"filter": {"parentId": None}, "sort": [{"property": "name"}]}
    before = query(client, alice, **args)
    set_(client, alice, create={"n": {"name": "Aardvark"}}, update={tree["w"]: {"name": "Zulu"}},
         destroy=[mid(ARCHIVE)])
    add_email(store, alice, (INBOX,))  # a counts-only change
    after = query(client, alice, **args)
    changes = client.call("Mailbox/queryChanges", {**args, "sinceQueryState": before["queryState"],
                                                   "calculateTotal": True}, alice)
    assert changes["newQueryState"] == after["queryState"]
    assert changes["total"] == len(after["ids"])
    assert apply_query_changes(before["ids"], changes) == after["ids"]
    assert mid(ARCHIVE) in changes["removed"]


def test_query_changes_nothing_changed(client, alice):
    q = query(client, alice)
    changes = client.call("Mailbox/queryChanges", {"sinceQueryState": q["queryState"]}, alice)
    assert changes["removed"] == [] and changes["added"] == []


def test_query_changes_as_tree_cannot_be_calculated(client, alice):
    q = query(client, alice, sortAsTree=True)
    error = client.error("Mailbox/queryChanges", {"accountId": aid(alice), "sinceQueryState": q["queryState"],
                                                  "sortAsTree": True})
    assert error["type"] == "cannotCalculateChanges"
