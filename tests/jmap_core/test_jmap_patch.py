"""PatchObject (RFC 8620 §5.3)."""

import pytest

from dualmail.jmap.errors import SetError
from dualmail.jmap.patch import apply_patch

TODO = {
    "id": "a",
    "title": "Practise Piano",
    "keywords": {"music": True, "beethoven": True, "mozart": True, "liszt": True, "rachmaninov": True},
    "neuralNetworkTimeEstimation": 3600,
}
KNOWN = {"id", "title", "keywords", "neuralNetworkTimeEstimation", "subTodoIds", "alerts"}
SERVER = {"id", "neuralNetworkTimeEstimation"}


def test_minimal_patch_and_whole_object_are_equivalent():
    # RFC 8620 §5.7: both forms have the same effect
    minimal = apply_patch(TODO, {"keywords/chopin": True, "keywords/mozart": None}, known=KNOWN)
    whole = dict(TODO, keywords={"music": True, "beethoven": True, "chopin": True, "liszt": True, "rachmaninov": True})
    assert apply_patch(TODO, whole, known=KNOWN, immutable=SERVER) == minimal
    assert "mozart" not in minimal["keywords"] and minimal["keywords"]["chopin"] is True
    assert TODO["keywords"]["mozart"] is True  # the input is not modified


def test_escapes():
    obj = {"m": {"a/b": 1, "c~d": 2}}
    assert apply_patch(obj, {"m/a~1b": 5, "m/c~0d": None}) == {"m": {"a/b": 5}}


def test_null_removes_or_resets_to_default():
    assert apply_patch({"x": 1}, {"x": None}) == {}
    assert apply_patch({}, {"x": None}) == {}  # absent: no-op
    assert apply_patch({"keywords": {"a": True}}, {"keywords": None}, defaults={"keywords": {}}) == {"keywords": {}}


@pytest.mark.parametrize(
    "patch",
    [
        {"alerts/1/offset": 5},  # inside an array
        {"alerts/1": {}},
        {"missing/x": 1},  # parent must exist
        {"title/x": 1},  # parent is not an object
        {"keywords/a": True, "keywords": {}},  # prefix
        {"alerts/1/offset": 1, "alerts": []},
        {"bad~2escape": 1},
    ],
)
def test_invalid_patch(patch):
    obj = {"title": "t", "keywords": {}, "alerts": [{"offset": 1}, {"offset": 2}]}
    with pytest.raises(SetError) as e:
        apply_patch(obj, patch)
    assert e.value.type == "invalidPatch"


def test_prefix_is_token_wise_not_string_wise():
    assert apply_patch({"ab": 1, "a": {}}, {"a/b": 1, "ab": 2}) == {"ab": 2, "a": {"b": 1}}


def test_server_set_properties_only_if_unchanged():
    assert apply_patch(TODO, {"id": "a", "title": "x"}, known=KNOWN, immutable=SERVER)["title"] == "x"
    with pytest.raises(SetError) as e:
        apply_patch(TODO, {"id": "b", "neuralNetworkTimeEstimation": 1, "title": "x"}, known=KNOWN, immutable=SERVER)
    assert e.value.type == "invalidProperties"
    assert e.value.properties == ["id", "neuralNetworkTimeEstimation"]


def test_unknown_properties():
    with pytest.raises(SetError) as e:
        apply_patch(TODO, {"colour": "red", "size/x": 1}, known=KNOWN)
    assert e.value.type == "invalidProperties" and e.value.properties == ["colour", "size"]


def test_not_an_object():
    with pytest.raises(SetError) as e:
        apply_patch(TODO, ["x"])  # type: ignore[arg-type]
    assert e.value.type == "invalidPatch"


def test_all_or_nothing():
    obj = {"a": {"x": 1}, "b": 2}
    with pytest.raises(SetError):
        apply_patch(obj, {"a/y": 2, "c/z": 3})
    assert obj == {"a": {"x": 1}, "b": 2}
