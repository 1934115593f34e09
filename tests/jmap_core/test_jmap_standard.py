"""Standard methods on the in-memory Foo type (RFC 8620 §5)."""

import pytest


def call(run, name, args, created_ids=None):
    response = run([[name, args, "0"]], created_ids=created_ids)
    responses = response["methodResponses"]
    return responses[0][1] if len(responses) == 1 else responses


def create(run, **objs):
    return call(run, "Foo/set", {"accountId": "A1", "create": objs})


def error_type(result):
    return result.get("type")


# -- /get ----------------------------------------------------------------------


def test_get(run):
    create(run, a={"title": "Practise Piano", "keywords": {"music": True}}, b={"title": "Dance"})
    r = call(run, "Foo/get", {"accountId": "A1", "ids": ["f1", "f1", "zz"], "properties": ["title"]})
    assert r == {"accountId": "A1", "state": "2", "list": [{"id": "f1", "title": "Practise Piano"}], "notFound": ["zz"]}
    everything = call(run, "Foo/get", {"accountId": "A1", "ids": None})
    assert {x["id"] for x in everything["list"]} == {"f1", "f2"} and everything["notFound"] == []
    assert everything["list"][0] == {"id": "f1", "title": "Practise Piano", "keywords": {"music": True},
                                     "estimate": 140, "subFooIds": None}
    assert call(run, "Foo/get", {"accountId": "A1", "ids": []})["list"] == []


@pytest.mark.parametrize(
    "args, expected",
    [
        ({"accountId": "A1", "ids": [], "properties": ["colour"]}, "invalidArguments"),
        ({"accountId": "A1", "ids": "f1"}, "invalidArguments"),
        ({"accountId": "A1", "ids": [], "bogus": 1}, "invalidArguments"),
        ({"accountId": "A1", "ids": ["a", "b", "c", "d", "e", "f"]}, "requestTooLarge"),
        ({"accountId": "nope", "ids": []}, "accountNotFound"),
        ({"accountId": "C1", "ids": []}, "accountNotSupportedByMethod"),
    ],
)
def test_get_errors(run, args, expected):
    assert error_type(call(run, "Foo/get", args)) == expected


def test_get_all_over_limit(run):
    create(run, **{f"k{i}": {"title": str(i)} for i in range(5)})
    create(run, k9={"title": "9"})
    assert error_type(call(run, "Foo/get", {"accountId": "A1"})) == "requestTooLarge"


# -- /set ----------------------------------------------------------------------


def test_set_rfc_example(run, foo):
    # RFC 8620 §5.7: whole object or minimal patch; server reports computed changes
    create(run, a={"title": "Practise Piano", "keywords": {"music": True, "mozart": True}})
    r = call(run, "Foo/set", {"accountId": "A1", "ifInState": "2",
                              "update": {"f1": {"keywords/chopin": True, "keywords/mozart": None}}})
    assert r["oldState"] == "2" and r["newState"] == "3"
    assert r["updated"] == {"f1": None}
    assert foo.accounts["A1"].records["f1"]["keywords"] == {"music": True, "chopin": True}
    whole = dict(foo.accounts["A1"].records["f1"], title="Practise Piano daily")
    r = call(run, "Foo/set", {"accountId": "A1", "update": {"f1": whole}})
    assert r["updated"] == {"f1": {"estimate": 200}}


def test_set_create_response_and_defaults(run):
    r = create(run, k1={"title": "x"})
    assert r["created"] == {"k1": {"id": "f1", "estimate": 10, "keywords": {}}}
    assert r["notCreated"] is None and r["updated"] is None and r["destroyed"] is None
    assert r["oldState"] == "1" and r["newState"] == "2"


def test_set_creation_id_references(run, foo):
    # RFC 8620 §5.7: subTodoIds: ["#k15"] in the same request
    create(run, a={"title": "Practise Piano"})
    r = call(run, "Foo/set", {"accountId": "A1", "create": {"k15": {"title": "Warm up with scales"}},
                              "update": {"f1": {"subFooIds": ["#k15"]}}})
    assert r["created"]["k15"]["id"] == "f2" and r["updated"] == {"f1": None}
    assert foo.accounts["A1"].records["f1"]["subFooIds"] == ["f2"]


def test_set_creates_ordered_by_references(run, foo):
    r = create(run, parent={"title": "p", "subFooIds": ["#child"]}, child={"title": "c"})
    assert r["notCreated"] is None
    parent = foo.accounts["A1"].records[r["created"]["parent"]["id"]]
    assert parent["subFooIds"] == [r["created"]["child"]["id"]]


def test_set_reference_across_calls_and_in_keys(run, foo):
    response = run([
        ["Foo/set", {"accountId": "A1", "create": {"k1": {"title": "one"}}}, "0"],
        ["Foo/set", {"accountId": "A1", "update": {"#k1": {"title": "u"}}}, "1"],
        ["Foo/set", {"accountId": "A1", "destroy": ["#k1", "#nope"]}, "2"],
    ])
    r = response["methodResponses"]
    assert r[1][1]["updated"] == {"f1": {"estimate": 10}}
    assert r[2][1]["destroyed"] == ["f1"]
    assert r[2][1]["notDestroyed"] == {"#nope": {"type": "notFound", "description": "no record '#nope'"}}


def test_set_unknown_reference_is_invalid_properties(run):
    r = create(run, k1={"title": "x", "subFooIds": ["#ghost"]})
    assert r["notCreated"]["k1"]["type"] == "invalidProperties"
    assert r["notCreated"]["k1"]["properties"] == ["subFooIds"]


def test_set_per_object_errors(run, foo):
    create(run, a={"title": "a"})
    r = call(run, "Foo/set", {
        "accountId": "A1",
        "create": {"bad": {"title": 5}, "srv": {"title": "x", "estimate": 3}, "unk": {"title": "x", "colour": 1},
                   "ok": {"title": "fine"}},
    })
    assert r["notCreated"]["bad"] == {"type": "invalidProperties", "properties": ["title"]}
    assert r["notCreated"]["srv"]["properties"] == ["estimate"]
    assert r["notCreated"]["unk"]["properties"] == ["colour"]
    assert r["created"]["ok"]["id"] == "f2"
    r = call(run, "Foo/set", {"accountId": "A1", "update": {"zz": {"title": "x"}, "f1": {"keywords/x/y": True}},
                              "destroy": ["zz"]})
    assert r["notUpdated"]["zz"]["type"] == "notFound"
    assert r["notUpdated"]["f1"]["type"] == "invalidPatch"
    assert r["notDestroyed"]["zz"]["type"] == "notFound"


def test_set_server_set_property_in_update(run):
    create(run, a={"title": "a"})
    r = call(run, "Foo/set", {"accountId": "A1", "update": {"f1": {"id": "f1", "estimate": 10, "title": "b"}}})
    assert r["updated"] == {"f1": None}
    r = call(run, "Foo/set", {"accountId": "A1", "update": {"f1": {"estimate": 99}}})
    assert r["notUpdated"]["f1"] == {"type": "invalidProperties", "description": "cannot set estimate",
                                     "properties": ["estimate"]}


def test_if_in_state_mismatch_changes_nothing(run, foo):
    create(run, a={"title": "a"})
    before = (foo.accounts["A1"].modseq, dict(foo.accounts["A1"].records), foo.writes)
    r = call(run, "Foo/set", {"accountId": "A1", "ifInState": "1", "create": {"k": {"title": "b"}},
                              "update": {"f1": {"title": "z"}}, "destroy": ["f1"]})
    assert r["type"] == "stateMismatch"
    assert (foo.accounts["A1"].modseq, dict(foo.accounts["A1"].records), foo.writes) == before
    assert call(run, "Foo/set", {"accountId": "A1", "ifInState": "junk!", "destroy": ["f1"]})["type"] == "stateMismatch"


def test_set_is_one_transaction(run, foo):
    r = create(run, a={"title": "a"}, b={"title": "b"}, c={"title": "c"})
    assert r["newState"] == "2" and foo.writes == 1
    r = call(run, "Foo/set", {"accountId": "A1", "destroy": ["zz"]})  # nothing changed: state unchanged
    assert r["oldState"] == r["newState"] == "2" and foo.writes == 1


def test_set_unexpected_failure_rolls_back(run, foo, monkeypatch):
    create(run, a={"title": "a"})

    def explode(ctx, tx, id):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(foo, "destroy", explode)
    r = call(run, "Foo/set", {"accountId": "A1", "update": {"f1": {"title": "changed"}}, "destroy": ["f1"]})
    assert r["type"] == "serverFail"
    assert foo.accounts["A1"].records["f1"]["title"] == "a" and foo.accounts["A1"].modseq == 2


@pytest.mark.parametrize(
    "args, expected",
    [
        ({"accountId": "A2", "create": {}}, "accountReadOnly"),
        ({"accountId": "A1", "create": {f"k{i}": {"title": "x"} for i in range(4)}, "destroy": ["a", "b"]},
         "requestTooLarge"),
        ({"accountId": "A1", "create": []}, "invalidArguments"),
        ({"accountId": "A1", "create": {"bad id!": {}}}, "invalidArguments"),
        ({"accountId": "A1", "destroy": "f1"}, "invalidArguments"),
        ({"accountId": "A1", "ifInState": 5}, "invalidArguments"),
    ],
)
def test_set_method_errors(run, args, expected):
    assert error_type(call(run, "Foo/set", args)) == expected


# -- /changes ------------------------------------------------------------------


def test_changes_rfc_example_and_paging(run):
    create(run, a={"title": "a"}, b={"title": "b"})                      # modseq 2
    call(run, "Foo/set", {"accountId": "A1", "update": {"f1": {"title": "aa"}}})  # 3
    call(run, "Foo/set", {"accountId": "A1", "destroy": ["f2"]})        # 4
    create(run, c={"title": "c"})                                       # 5
    r = call(run, "Foo/changes", {"accountId": "A1", "sinceState": "2", "maxChanges": 50})
    assert r == {"accountId": "A1", "oldState": "2", "newState": "5", "hasMoreChanges": False,
                 "created": ["f3"], "updated": ["f1"], "destroyed": ["f2"]}
    # created+destroyed since the old state: omitted; created+updated: created only
    r = call(run, "Foo/changes", {"accountId": "A1", "sinceState": "1"})
    assert r["created"] == ["f1", "f3"] and r["updated"] == [] and r["destroyed"] == []
    page = call(run, "Foo/changes", {"accountId": "A1", "sinceState": "2", "maxChanges": 2})
    assert page["hasMoreChanges"] is True and page["newState"] == "4"
    assert page["updated"] == ["f1"] and page["destroyed"] == ["f2"]
    rest = call(run, "Foo/changes", {"accountId": "A1", "sinceState": page["newState"], "maxChanges": 2})
    assert rest["hasMoreChanges"] is False and rest["created"] == ["f3"] and rest["newState"] == "5"


@pytest.mark.parametrize(
    "args, expected",
    [
        ({"accountId": "A1", "sinceState": "garbage"}, "cannotCalculateChanges"),
        ({"accountId": "A1", "sinceState": "999"}, "cannotCalculateChanges"),
        ({"accountId": "A1", "sinceState": "1", "maxChanges": 0}, "invalidArguments"),
        ({"accountId": "A1", "sinceState": "1", "maxChanges": -3}, "invalidArguments"),
        ({"accountId": "A1"}, "invalidArguments"),
        ({"accountId": "A1", "sinceState": 1}, "invalidArguments"),
    ],
)
def test_changes_errors(run, args, expected):
    assert error_type(call(run, "Foo/changes", args)) == expected


def test_changes_compacted_log(run, foo):
    create(run, a={"title": "a"})
    foo.accounts["A1"].compacted_below = 2
    assert error_type(call(run, "Foo/changes", {"accountId": "A1", "sinceState": "1"})) == "cannotCalculateChanges"


# -- /copy ---------------------------------------------------------------------


def test_copy_with_destroy_original(run, foo):
    # RFC 8620 §5.7: Todo/copy + implicit Todo/set with the same call id
    create(run, a={"title": "Listen"})
    response = run([["Foo/copy", {"fromAccountId": "A1", "accountId": "B1", "create": {"k5122": {"id": "f1"}},
                                  "onSuccessDestroyOriginal": True}, "0"]])
    copy, implicit = response["methodResponses"]
    assert copy[0] == "Foo/copy" and copy[2] == "0"
    assert copy[1]["created"] == {"k5122": {"id": "f2", "estimate": 60}}
    assert copy[1]["fromAccountId"] == "A1" and copy[1]["accountId"] == "B1"
    assert implicit[0] == "Foo/set" and implicit[2] == "0" and implicit[1]["destroyed"] == ["f1"]
    assert "f2" in foo.accounts["B1"].records and "f1" not in foo.accounts["A1"].records
    assert response.get("createdIds") is None


def test_copy_errors(run, foo):
    create(run, a={"title": "x"})
    r = call(run, "Foo/copy", {"fromAccountId": "A1", "accountId": "B1",
                               "create": {"k1": {"id": "nope"}, "k2": {}, "k3": {"id": "f1", "title": 3}}})
    assert r["notCreated"]["k1"]["type"] == "notFound"
    assert r["notCreated"]["k2"]["properties"] == ["id"]
    assert r["notCreated"]["k3"]["type"] == "invalidProperties"
    for args, expected in [
        ({"fromAccountId": "A1", "accountId": "A1", "create": {}}, "invalidArguments"),
        ({"fromAccountId": "zz", "accountId": "B1", "create": {}}, "fromAccountNotFound"),
        ({"fromAccountId": "C1", "accountId": "B1", "create": {}}, "fromAccountNotSupportedByMethod"),
        ({"fromAccountId": "A1", "accountId": "A2", "create": {}}, "accountReadOnly"),
        ({"fromAccountId": "A1", "accountId": "B1", "ifFromInState": "1", "create": {}}, "stateMismatch"),
        ({"fromAccountId": "A1", "accountId": "B1", "ifInState": "7", "create": {}}, "stateMismatch"),
    ]:
        assert error_type(call(run, "Foo/copy", args)) == expected, args


def test_copy_destroy_from_if_in_state_mismatch(run, foo):
    create(run, a={"title": "x"})
    response = run([["Foo/copy", {"fromAccountId": "A1", "accountId": "B1", "create": {"k": {"id": "f1"}},
                                  "onSuccessDestroyOriginal": True, "destroyFromIfInState": "1"}, "c"]])
    copy, err = response["methodResponses"]
    assert copy[1]["created"]["k"]["id"] == "f2"
    assert err[0] == "error" and err[1]["type"] == "stateMismatch" and err[2] == "c"
    assert "f1" in foo.accounts["A1"].records


# -- /query and /queryChanges ----------------------------------------------------


@pytest.fixture
def todos(run):
    return create(
        run,
        a={"title": "Practise Piano", "keywords": {"music": True}},
        b={"title": "Watch Daft Punk music video", "keywords": {"music": True, "video": True}},
        c={"title": "Buy milk"},
        d={"title": "Film a video", "keywords": {"video": True}},
        e={"title": "Clean"},
    )["created"]


MUSIC_OR_VIDEO = {"operator": "OR", "conditions": [{"hasKeyword": "music"}, {"hasKeyword": "video"}]}


def test_query_rfc_example(run, todos):
    response = run([
        ["Foo/query", {"accountId": "A1", "filter": MUSIC_OR_VIDEO, "sort": [{"property": "title"}],
                       "position": 0, "limit": 10}, "0"],
        ["Foo/get", {"accountId": "A1", "#ids": {"resultOf": "0", "name": "Foo/query", "path": "/ids"},
                     "properties": ["title"]}, "1"],
    ])
    query, get = response["methodResponses"]
    ids = [todos[k]["id"] for k in ("d", "a", "b")]  # Film, Practise, Watch
    assert query[1] == {"accountId": "A1", "queryState": "2", "canCalculateChanges": True, "position": 0, "ids": ids}
    assert [x["id"] for x in get[1]["list"]] == ids


def test_query_window(run, todos):
    def q(**kw):
        return call(run, "Foo/query", {"accountId": "A1", "sort": [{"property": "title", "isAscending": False}], **kw})

    all_ids = q()["ids"]
    assert len(all_ids) == 5
    assert q(position=-2)["ids"] == all_ids[3:] and q(position=-2)["position"] == 3
    assert q(position=-99)["position"] == 0
    assert q(position=9)["ids"] == [] and q(position=9)["position"] == 9
    assert q(limit=2, calculateTotal=True) == {**q(limit=2), "total": 5}
    assert "total" not in q()
    assert q()["limit"] == 50  # clamped by the server: told so
    assert "limit" not in q(limit=3)
    assert q(limit=500)["limit"] == 50
    assert q(anchor=all_ids[2], anchorOffset=-1, limit=2)["ids"] == all_ids[1:3]
    assert q(anchor=all_ids[0], anchorOffset=-5, position=3)["position"] == 0
    assert q(anchor="zz")["type"] == "anchorNotFound"


@pytest.mark.parametrize(
    "args, expected",
    [
        ({"filter": {"operator": "XOR", "conditions": []}}, "invalidArguments"),
        ({"filter": {"operator": "AND"}}, "invalidArguments"),
        ({"filter": {"operator": "AND", "conditions": [], "x": 1}}, "invalidArguments"),
        ({"filter": {"operator": "NOT", "conditions": ["x"]}}, "invalidArguments"),
        ({"filter": {"operator": "NOT", "conditions": [{"colour": "red"}]}}, "unsupportedFilter"),
        ({"filter": "music"}, "invalidArguments"),
        ({"sort": [{"property": "estimate"}]}, "unsupportedSort"),
        ({"sort": [{"property": "title", "collation": "i;klingon"}]}, "unsupportedSort"),
        ({"sort": [{"property": "title", "isAscending": "yes"}]}, "invalidArguments"),
        ({"sort": [{"isAscending": True}]}, "invalidArguments"),
        ({"sort": {"property": "title"}}, "invalidArguments"),
        ({"limit": -1}, "invalidArguments"),
        ({"position": "0"}, "invalidArguments"),
        ({"collapseThreads": True}, "invalidArguments"),
    ],
)
def test_query_errors(run, args, expected):
    assert error_type(call(run, "Foo/query", {"accountId": "A1", **args})) == expected


def test_query_ignores_unknown_comparator_keys(run, todos):
    """RFC 8620 §5.5 lets a Comparator carry more properties; keys the type does not
    define are ignored (jmapc sends anchorOffset/position/calculateTotal in each)."""
    plain = call(run, "Foo/query", {"accountId": "A1", "sort": [{"property": "title"}]})
    odd = call(run, "Foo/query", {"accountId": "A1", "sort": [
        {"property": "title", "keyword": "x", "anchorOffset": 0, "position": 0}]})
    assert odd["ids"] == plain["ids"]


def test_query_filter_operators(run, todos):
    not_music = {"operator": "NOT", "conditions": [{"hasKeyword": "music"}]}
    r = call(run, "Foo/query", {"accountId": "A1", "filter": {"operator": "AND", "conditions": [
        not_music, {"hasKeyword": "video"}]}})
    assert r["ids"] == [todos["d"]["id"]]


def test_deep_filter_is_rejected(run):
    f = {"hasKeyword": "x"}
    for _ in range(40):
        f = {"operator": "NOT", "conditions": [f]}
    assert error_type(call(run, "Foo/query", {"accountId": "A1", "filter": f})) == "unsupportedFilter"


def test_query_changes_rfc_example(run, todos):
    query = {"accountId": "A1", "filter": MUSIC_OR_VIDEO, "sort": [{"property": "title"}]}
    state = call(run, "Foo/query", query)["queryState"]
    call(run, "Foo/set", {"accountId": "A1", "destroy": [todos["b"]["id"]]})
    create(run, z={"title": "Aardvark video", "keywords": {"video": True}})
    r = call(run, "Foo/queryChanges", {**query, "sinceQueryState": state, "maxChanges": 50, "calculateTotal": True})
    assert r == {"accountId": "A1", "oldQueryState": state, "newQueryState": "4",
                 "removed": [todos["b"]["id"]], "added": [{"id": "f6", "index": 0}], "total": 3}
    r = call(run, "Foo/queryChanges", {**query, "sinceQueryState": state, "maxChanges": 1})
    assert r["type"] == "tooManyChanges"
    r = call(run, "Foo/queryChanges", {**query, "sinceQueryState": "nonsense"})
    assert r["type"] == "cannotCalculateChanges"
    r = call(run, "Foo/queryChanges", {**query, "sinceQueryState": "77"})
    assert r["type"] == "cannotCalculateChanges"
    assert error_type(call(run, "Foo/queryChanges", {"accountId": "A1"})) == "invalidArguments"


def test_query_changes_default_is_cannot_calculate(limits):
    from jmap_fakes import FooType, Runner
    from dualmail.jmap.dispatch import core_methods
    from dualmail.jmap.standard import standard_methods

    class NoQueryChanges(FooType):
        query_changes = None

    foo = NoQueryChanges()  # query_changes None: the hook is absent
    run = Runner({**core_methods(), **standard_methods(foo)}, limits)
    r = run([["Foo/queryChanges", {"accountId": "A1", "sinceQueryState": "1"}, "0"]])["methodResponses"][0]
    assert r[1]["type"] == "cannotCalculateChanges"


def test_standard_methods_registry(foo):
    from dualmail.jmap.standard import standard_methods

    assert sorted(standard_methods(foo)) == [
        "Foo/changes", "Foo/copy", "Foo/get", "Foo/query", "Foo/queryChanges", "Foo/set"]

    class ReadOnly:
        name, capability, properties = "Bar", "x", frozenset({"id"})

        def get(self, *a):
            raise NotImplementedError

    assert sorted(standard_methods(ReadOnly())) == ["Bar/get"]
