"""Generic standard methods (RFC 8620 §5): /get /changes /set /copy /query
/queryChanges, parameterised by a data-type definition.

A data type (``types/mailbox.py``, ``types/email.py``, ...) is an object with
the attributes below; ``standard_methods(datatype)`` returns the registry
entries for the methods it supports (decided by which hooks it has). This
module does argument validation, limits, creation-id and result bookkeeping,
PatchObject application and state-string rendering; the type only touches its
data. All hooks are synchronous (one LMDB transaction on the reactor thread);
every hook receives the ``CallContext`` first.

Attributes (all types)::

    name: str                       # "Foo": methods are "Foo/get", ...
    capability: str                 # URI needed in `using` and in the account
    properties: frozenset[str]      # every property name, incl. "id"
    default_properties: frozenset[str] | None  # /get with properties=null
                                    # (optional; default: `properties`)
    server_set: frozenset[str]      # may not be given on create; on update
                                    # only with the current value ("id" ...)
    defaults: Mapping[str, Any]     # value a top-level property takes when
                                    # patched to null (absent: removed)
    id_properties: frozenset[str]   # top-level properties holding record
                                    # ids (Id, Id[], Id[Boolean] keys):
                                    # "#creationId" is resolved in them

Hooks (each optional; a method is offered only if its hooks exist)::

    /get      get(ctx, account_id, ids: list[str] | None,
                  properties: frozenset[str], extra: dict) -> GetResult
              # ids None: all records. Return found records (each with "id";
              # extra properties are stripped here) and the state they were
              # read at, both from ONE read view.
    /changes  changes_since(ctx, account_id, since: StatePosition,
                  limit: int) -> Changes
              # at most `limit` ids in total; raise CannotCalculateChanges
    /set      write(ctx, account_id) -> ContextManager[tx]
              # ONE write transaction; commit on normal exit, abort (nothing
              # written) if the block raises
              state(ctx, tx) -> int          # type state at transaction start
              lookup(ctx, tx, id) -> dict | None   # current record to patch
              create(ctx, tx, obj) -> dict   # -> server-set/defaulted props
                                             #    incl. "id"; SetError
              update(ctx, tx, id, current, patched) -> dict | None
                                             # -> props changed beyond the
                                             #    patch; SetError
              destroy(ctx, tx, id) -> None   # SetError("notFound"), ...
              committed_state(ctx, tx) -> int  # after commit: new state
                                             # (== state() if nothing changed)
              # create/update/destroy must validate before writing: a SetError
              # must leave nothing of that object written (§5.3 atomicity).
    /copy     read_for_copy(ctx, from_account_id, ids) -> (dict[id, record], state)
              copy(ctx, tx, from_account_id, original, overrides) -> dict
              # (plus the /set hooks, for the target account and the implicit
              # Foo/set destroy of onSuccessDestroyOriginal)
    /query    query(ctx, account_id, Query) -> QueryResult
              filter_conditions: frozenset[str]   # FilterCondition keys
              sort_properties: frozenset[str]     # Comparator "property"s
              comparator_arguments: frozenset[str]  # extra Comparator keys
    /queryChanges  query_changes(ctx, account_id, Query, since: int,
                  up_to_id: str | None, max_changes: int | None) -> QueryChanges
              # optional: without it, queryChanges is cannotCalculateChanges

Type-specific arguments: optional ``get_arguments``, ``changes_arguments``,
``set_arguments``, ``query_arguments``: ``Mapping[name, default]``. Their
values (the default when omitted) reach the type as the ``extra`` argument of
get(), as a 5th argument of changes_since() (only if declared), as
``Query.extra``, and for /set as ``ctx.extra`` during the call. The type
validates them (raise ``MethodError("invalidArguments")``).

Must not import twisted, klein or the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .args import ArgReader, is_id
from .dispatch import CallContext, Method, Responses
from .errors import CannotCalculateChanges, MethodError, SetError
from .patch import apply_patch, parse_path
from .pointer import escape
from .state import StatePosition, parse_position, parse_state, to_state

MAX_FILTER_DEPTH = 32


# -- values exchanged with data types ---------------------------------------


@dataclass(frozen=True, slots=True)
class GetResult:
    records: Sequence[Mapping[str, Any]]
    state: int
    exact: bool = False  # the records hold exactly the wanted properties (no filtering)


@dataclass(frozen=True, slots=True)
class Changes:
    created: Sequence[str]
    updated: Sequence[str]
    destroyed: Sequence[str]
    new_state: StatePosition | int
    has_more: bool
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. updatedProperties


@dataclass(frozen=True, slots=True)
class Comparator:
    property: str
    is_ascending: bool = True
    collation: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Query:
    """A validated /query or /queryChanges: ``filter`` is the JSON tree
    (FilterOperator / FilterCondition dicts, checked), or None."""

    filter: Mapping[str, Any] | None
    sort: tuple[Comparator, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    # /query windowing hints a type may use: only the first ``limit_hint`` ids are
    # needed (None: all of them); ``need_total``: the response reports the total
    limit_hint: int | None = None
    need_total: bool = True


@dataclass(frozen=True, slots=True)
class QueryResult:
    ids: Sequence[str]  # every matching id in order, or at least the first limit_hint
    query_state: int
    can_calculate_changes: bool = False
    total: int | None = None  # None: len(ids) when ids is every id, else not needed


@dataclass(frozen=True, slots=True)
class QueryChanges:
    removed: Sequence[str]
    added: Sequence[tuple[str, int]]  # (id, index), lowest index first
    new_query_state: int
    total: int


# -- helpers -----------------------------------------------------------------


def _extra(reader: ArgReader, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {name: reader.any(name, default, nullable=True) for name, default in spec.items()}


def match_filter(node: Mapping[str, Any] | None, condition: Callable[[Mapping[str, Any]], bool]) -> bool:
    """Evaluate a validated filter tree for one record, calling ``condition``
    on each FilterCondition (for types that filter in memory)."""
    if node is None:
        return True
    operator = node.get("operator")
    if operator is None:
        return condition(node)
    results = (match_filter(child, condition) for child in node["conditions"])
    if operator == "AND":
        return all(results)
    if operator == "OR":
        return any(results)
    return not any(results)  # NOT


def filter_conditions_in(node: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    """Every FilterCondition of a validated filter tree (for types that check
    their condition values themselves)."""
    if node is None:
        return
    if "operator" in node:
        for child in node["conditions"]:
            yield from filter_conditions_in(child)
    else:
        yield node


def validate_filter(node: Any, conditions: frozenset[str], depth: int = 0) -> None:
    """RFC 8620 §5.5 ``filter``: FilterOperator {operator: AND|OR|NOT,
    conditions: [...]} recursively, or a FilterCondition whose keys the type
    knows (else unsupportedFilter)."""
    if depth > MAX_FILTER_DEPTH:
        raise MethodError("unsupportedFilter", "filter nested too deeply")
    if not isinstance(node, dict):
        raise MethodError("invalidArguments", "argument 'filter': each filter must be an object")
    if "operator" in node:
        if node["operator"] not in ("AND", "OR", "NOT"):
            raise MethodError("invalidArguments", f"argument 'filter': unknown operator {node['operator']!r}")
        children = node.get("conditions")
        if not isinstance(children, list):
            raise MethodError("invalidArguments", "argument 'filter': operator needs a 'conditions' array")
        unknown = set(node) - {"operator", "conditions"}
        if unknown:
            raise MethodError("invalidArguments", f"argument 'filter': unknown FilterOperator key {min(unknown)!r}")
        for child in children:
            validate_filter(child, conditions, depth + 1)
        return
    unknown = set(node) - conditions
    if unknown:
        raise MethodError("unsupportedFilter", f"unsupported filter condition {min(unknown)!r}")


def parse_sort(sort: Any, datatype: Any, collations: Sequence[str]) -> tuple[Comparator, ...]:
    """RFC 8620 §5.5 ``sort``: a list of Comparator objects."""
    if sort is None:
        return ()
    if not isinstance(sort, list):
        raise MethodError("invalidArguments", "argument 'sort' must be an array of Comparators")
    allowed_extra = frozenset(getattr(datatype, "comparator_arguments", ()))
    comparators = []
    for item in sort:
        if not isinstance(item, dict) or not isinstance(item.get("property"), str):
            raise MethodError("invalidArguments", "argument 'sort': a Comparator needs a String 'property'")
        is_ascending = item.get("isAscending", True)
        if not isinstance(is_ascending, bool):
            raise MethodError("invalidArguments", "argument 'sort': 'isAscending' must be a Boolean")
        collation = item.get("collation")
        if collation is not None and not isinstance(collation, str):
            raise MethodError("invalidArguments", "argument 'sort': 'collation' must be a String")
        # Keys the type does not define are ignored, not refused: RFC 8620 §5.5 lets
        # a Comparator carry more properties, and real clients send some (jmapc puts
        # anchorOffset/position/calculateTotal into every Comparator).
        extra = {k: v for k, v in item.items() if k in allowed_extra}
        if item["property"] not in datatype.sort_properties:
            raise MethodError("unsupportedSort", f"cannot sort on {item['property']!r}")
        if collation is not None and collation not in collations:
            raise MethodError("unsupportedSort", f"unknown collation {collation!r}")
        comparators.append(Comparator(item["property"], is_ascending, collation, extra))
    return tuple(comparators)


def _check_state(given: str | None, current: int) -> None:
    if given is not None and given != to_state(current):
        raise MethodError("stateMismatch", f"state is {to_state(current)}, not {given}")


class _Ids:
    """Creation-id resolution during one /set or /copy: ids created in this
    call (not yet committed) over the request's createdIds."""

    def __init__(self, ctx: CallContext):
        self.ctx = ctx
        self.local: dict[str, str] = {}

    def resolve(self, value: str) -> str | None:
        if value.startswith("#"):
            return self.local.get(value[1:], self.ctx.created_ids.get(value[1:]))
        return value

    def _one(self, value: Any, prop: str, bad: list[str]) -> Any:
        if isinstance(value, str) and value.startswith("#"):
            resolved = self.resolve(value)
            if resolved is None:
                bad.append(prop)
                return value
            return resolved
        return value

    def in_value(self, prop: str, value: Any, bad: list[str]) -> Any:
        """Resolve ``#refs`` in one id-holding property value: Id, Id[], or
        the keys of Id[*]."""
        if isinstance(value, list):
            return [self._one(v, prop, bad) for v in value]
        if isinstance(value, dict):
            return {self._one(k, prop, bad): v for k, v in value.items()}
        return self._one(value, prop, bad)

    def in_object(self, obj: Mapping[str, Any], id_properties: frozenset[str]) -> dict[str, Any]:
        bad: list[str] = []
        result = {k: (self.in_value(k, v, bad) if k in id_properties else v) for k, v in obj.items()}
        if bad:
            raise SetError("invalidProperties", "unknown creation id reference", properties=sorted(set(bad)))
        return result

    def in_patch(self, patch: Mapping[str, Any], id_properties: frozenset[str]) -> dict[str, Any]:
        bad: list[str] = []
        result: dict[str, Any] = {}
        for key, value in patch.items():
            tokens = parse_path(key)
            if tokens[0] in id_properties:
                if len(tokens) == 1:
                    value = self.in_value(tokens[0], value, bad)
                elif len(tokens) == 2 and tokens[1].startswith("#"):
                    tokens[1] = self._one(tokens[1], tokens[0], bad)
                    key = "/".join(escape(t) for t in tokens)
            result[key] = value
        if bad:
            raise SetError("invalidProperties", "unknown creation id reference", properties=sorted(set(bad)))
        return result


def _refs_in(obj: Any, id_properties: frozenset[str]) -> set[str]:
    """Creation ids (without ``#``) referenced by a create object."""
    found: set[str] = set()
    if not isinstance(obj, dict):
        return found
    for prop in id_properties & obj.keys():
        value = obj[prop]
        items = value if isinstance(value, list) else list(value) if isinstance(value, dict) else [value]
        found.update(v[1:] for v in items if isinstance(v, str) and v.startswith("#"))
    return found


def _creation_order(create: Mapping[str, Any], id_properties: frozenset[str]) -> list[str]:
    """Creates referenced by other creates of the same call go first
    (RFC 8620 §5.3); cycles keep the client's order (and fail to resolve)."""
    pending = list(create)
    order: list[str] = []
    while pending:
        ready = [cid for cid in pending if not ((_refs_in(create[cid], id_properties) & set(pending)) - {cid})]
        if not ready:
            order.extend(pending)
            break
        order.extend(ready)
        pending = [cid for cid in pending if cid not in ready]
    return order


def _check_create_props(datatype: Any, obj: Mapping[str, Any], allow: frozenset[str] = frozenset()) -> None:
    bad = sorted(
        k for k in obj if k not in allow and (k not in datatype.properties or k in datatype.server_set)
    )
    if bad:
        raise SetError("invalidProperties", "unknown or server-set properties: " + ", ".join(bad), properties=bad)


# -- the methods -------------------------------------------------------------


def get(datatype: Any, ctx: CallContext, args: dict[str, Any]) -> Responses:
    """Foo/get (RFC 8620 §5.1)."""
    r = ArgReader(args)
    account_id = ctx.account(r.id("accountId"))
    ids = r.id_list("ids", None, nullable=True, refs=True)
    properties = r.string_list("properties", None, nullable=True)
    extra = _extra(r, getattr(datatype, "get_arguments", {}))
    r.finish()
    if properties is None:
        wanted = frozenset(getattr(datatype, "default_properties", None) or datatype.properties) | {"id"}
    else:
        unknown = [p for p in properties if p not in datatype.properties]
        if unknown:
            raise MethodError("invalidArguments", f"argument 'properties': unknown property {unknown[0]!r}")
        wanted = frozenset(properties) | {"id"}
    limit = ctx.limits.max_objects_in_get
    not_found: list[str] = []
    lookup: list[str] | None = None
    if ids is not None:
        ids = list(dict.fromkeys(ids))
        if len(ids) > limit:
            raise MethodError("requestTooLarge", f"{len(ids)} ids requested; maxObjectsInGet is {limit}")
        lookup = []
        for given in ids:
            real = ctx.resolve_creation_id(given)
            if real is None:
                not_found.append(given)
            else:
                lookup.append(real)
        lookup = list(dict.fromkeys(lookup))
    result = datatype.get(ctx, account_id, lookup, wanted, extra)
    if ids is None and len(result.records) > limit:
        raise MethodError("requestTooLarge", f"more than maxObjectsInGet ({limit}) records; pass ids")
    found = {record["id"] for record in result.records}
    if lookup is not None:
        not_found.extend(i for i in lookup if i not in found)
    records = list(result.records) if result.exact else [
        {k: v for k, v in record.items() if k in wanted} for record in result.records]
    return [
        (
            f"{datatype.name}/get",
            {"accountId": account_id, "state": to_state(result.state), "list": records, "notFound": not_found},
        )
    ]


def changes(datatype: Any, ctx: CallContext, args: dict[str, Any]) -> Responses:
    """Foo/changes (RFC 8620 §5.2)."""
    r = ArgReader(args)
    account_id = ctx.account(r.id("accountId"))
    since_state = r.string("sinceState")
    max_changes = r.unsigned("maxChanges", None, nullable=True, positive=True)
    extra = _extra(r, getattr(datatype, "changes_arguments", {}))
    r.finish()
    since = parse_position(since_state, "cannotCalculateChanges")
    limit = min(max_changes or ctx.limits.max_changes, ctx.limits.max_changes)
    try:
        if extra:
            result = datatype.changes_since(ctx, account_id, since, limit, extra)
        else:
            result = datatype.changes_since(ctx, account_id, since, limit)
    except CannotCalculateChanges as e:
        raise MethodError("cannotCalculateChanges", str(e) or None) from None
    created, updated, destroyed = _coalesce(result.created, result.updated, result.destroyed)
    if len(created) + len(updated) + len(destroyed) > limit:
        raise RuntimeError(f"{datatype.name}.changes_since returned more than {limit} ids")
    response = {
        "accountId": account_id,
        "oldState": since_state,
        "newState": to_state(result.new_state),
        "hasMoreChanges": bool(result.has_more),
        "created": created,
        "updated": updated,
        "destroyed": destroyed,
    }
    response.update(result.extra)
    return [(f"{datatype.name}/changes", response)]


def _coalesce(
    created: Sequence[str], updated: Sequence[str], destroyed: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """§5.2: created+destroyed -> omitted; created+updated -> created;
    updated+destroyed -> destroyed. Duplicates removed."""
    c, u, d = dict.fromkeys(created), dict.fromkeys(updated), dict.fromkeys(destroyed)
    both = c.keys() & d.keys()
    return (
        [i for i in c if i not in both],
        [i for i in u if i not in c and i not in d],
        [i for i in d if i not in both],
    )


@dataclass(slots=True)
class _SetPlan:
    """A Foo/set call's arguments, read and checked before any transaction."""

    account_id: str
    if_in_state: str | None
    create: dict[str, Any]
    update: dict[str, Any]
    destroy: list[str]
    extra: dict[str, Any]
    id_properties: frozenset[str]


@dataclass(slots=True)
class _SetOutcome:
    """What one run of a /set against a transaction did (a group commit may run it again)."""

    old_state: int
    ids: _Ids
    created: dict[str, Any] = field(default_factory=dict)
    not_created: dict[str, Any] = field(default_factory=dict)
    updated: dict[str, Any] = field(default_factory=dict)
    not_updated: dict[str, Any] = field(default_factory=dict)
    destroyed: list[str] = field(default_factory=list)
    not_destroyed: dict[str, Any] = field(default_factory=dict)


def _read_set(datatype: Any, ctx: CallContext, args: dict[str, Any]) -> _SetPlan:
    r = ArgReader(args)
    account_id = ctx.account(r.id("accountId"), write=True)
    if_in_state = r.string("ifInState", None, nullable=True)
    create = r.object("create", None, nullable=True) or {}
    update = r.object("update", None, nullable=True) or {}
    destroy = r.id_list("destroy", None, nullable=True, refs=True) or []
    extra = _extra(r, getattr(datatype, "set_arguments", {}))
    r.finish()
    for cid in create:
        if not is_id(cid):
            raise MethodError("invalidArguments", f"argument 'create': {cid!r} is not a valid creation id")
    total = len(create) + len(update) + len(destroy)
    if total > ctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", f"{total} objects; maxObjectsInSet is {ctx.limits.max_objects_in_set}")
    return _SetPlan(account_id, if_in_state, create, update, destroy, extra,
                    frozenset(getattr(datatype, "id_properties", ())))


def _apply_set(datatype: Any, ctx: CallContext, plan: _SetPlan, tx: Any, old_state: int) -> _SetOutcome:
    """The creates, updates and destroys of ``plan`` in ``tx`` (§5.3: in that order)."""
    _check_state(plan.if_in_state, old_state)
    out = _SetOutcome(old_state, _Ids(ctx))
    ids, create, id_properties = out.ids, plan.create, plan.id_properties
    with _bind_extra(ctx, plan.extra):
        for cid in _creation_order(create, id_properties):
            try:
                obj = create[cid]
                if not isinstance(obj, dict):
                    raise SetError("invalidProperties", "a create value must be an object")
                _check_create_props(datatype, obj)
                props = datatype.create(ctx, tx, ids.in_object(obj, id_properties))
                ids.local[cid] = props["id"]
                out.created[cid] = dict(props)
            except SetError as e:
                out.not_created[cid] = e.to_json()
        for key, patch in plan.update.items():
            real = ids.resolve(key)
            try:
                current = None if real is None else datatype.lookup(ctx, tx, real)
                if current is None:
                    raise SetError("notFound", f"no record {key!r}")
                if not isinstance(patch, dict):
                    raise SetError("invalidPatch", "a PatchObject must be an object")
                patched = apply_patch(
                    current,
                    ids.in_patch(patch, id_properties),
                    known=datatype.properties,
                    immutable=datatype.server_set,
                    defaults=getattr(datatype, "defaults", None),
                )
                changed = datatype.update(ctx, tx, real, current, patched)
                out.updated[real] = dict(changed) if changed else None
            except SetError as e:
                out.not_updated[real if real is not None else key] = e.to_json()
        for key in plan.destroy:
            real = ids.resolve(key)
            try:
                if real is None:
                    raise SetError("notFound", f"no record {key!r}")
                datatype.destroy(ctx, tx, real)
                out.destroyed.append(real)
            except SetError as e:
                out.not_destroyed[real if real is not None else key] = e.to_json()
    return out


def _set_response(datatype: Any, ctx: CallContext, plan: _SetPlan, out: _SetOutcome, new_state: int) -> Responses:
    ctx.created_ids.update(out.ids.local)
    return [
        (
            f"{datatype.name}/set",
            {
                "accountId": plan.account_id,
                "oldState": to_state(out.old_state),
                "newState": to_state(new_state),
                "created": out.created or None,
                "updated": out.updated or None,
                "destroyed": out.destroyed or None,
                "notCreated": out.not_created or None,
                "notUpdated": out.not_updated or None,
                "notDestroyed": out.not_destroyed or None,
            },
        )
    ]


def set_(datatype: Any, ctx: CallContext, args: dict[str, Any]) -> Responses:
    """Foo/set (RFC 8620 §5.3): all of it in one write transaction."""
    plan = _read_set(datatype, ctx, args)
    with _bind_extra(ctx, plan.extra), datatype.write(ctx, plan.account_id) as tx:
        out = _apply_set(datatype, ctx, plan, tx, datatype.state(ctx, tx))
    return _set_response(datatype, ctx, plan, out, datatype.committed_state(ctx, tx))


WriteRunner = Callable[[str, Callable[[Any], Any]], Awaitable[Any]]


async def set_grouped(datatype: Any, ctx: CallContext, args: dict[str, Any], *, run_write: WriteRunner) -> Responses:
    """Foo/set with its transaction handed to ``run_write(account_id, fn)``, which runs
    ``fn(tx)`` in a write transaction that other writers may share (the store's group
    commit, on a worker thread) and resolves once it is durable.  ``fn`` may run more
    than once (a failure elsewhere in the group re-runs each alone), so every run starts
    from fresh results.  A call with ``ifInState`` keeps a transaction of its own: its
    state check must not pass over another writer's change in the same transaction.

    The datatype gives ``state_after(tx, old_state)``: its state once ``tx`` committed.
    A transaction shared with another writer of the account has one modseq for both, so
    ``newState`` may cover the other's changes too (a /changes from ``oldState`` returns
    both), never fewer than this call's."""
    plan = _read_set(datatype, ctx, args)
    if plan.if_in_state is not None:
        return set_(datatype, ctx, args)

    def run(tx: Any) -> tuple[_SetOutcome, Any]:
        return _apply_set(datatype, ctx, plan, tx, tx.state(datatype.name)), tx

    out, tx = await run_write(plan.account_id, run)
    return _set_response(datatype, ctx, plan, out, datatype.state_after(tx, out.old_state))


class _bind_extra:
    """Expose type-specific /set arguments to the hooks as ``ctx.extra``
    for the duration of the call."""

    def __init__(self, ctx: CallContext, extra: dict[str, Any]):
        self.ctx, self.extra = ctx, extra

    def __enter__(self) -> None:
        self.saved, self.ctx.extra = self.ctx.extra, self.extra

    def __exit__(self, *exc: object) -> None:
        self.ctx.extra = self.saved


def copy(datatype: Any, ctx: CallContext, args: dict[str, Any]) -> Responses:
    """Foo/copy (RFC 8620 §5.4), with the implicit Foo/set destroy of
    onSuccessDestroyOriginal."""
    r = ArgReader(args)
    from_account_id = r.id("fromAccountId")
    if_from_in_state = r.string("ifFromInState", None, nullable=True)
    account_id = r.id("accountId")
    if_in_state = r.string("ifInState", None, nullable=True)
    create = r.object("create")
    destroy_original = r.boolean("onSuccessDestroyOriginal", False)
    destroy_from_if_in_state = r.string("destroyFromIfInState", None, nullable=True)
    r.finish()
    if from_account_id == account_id:
        raise MethodError("invalidArguments", "argument 'accountId' must differ from 'fromAccountId'")
    ctx.account(from_account_id, "fromAccountId")
    ctx.account(account_id, write=True)
    for cid in create:
        if not is_id(cid):
            raise MethodError("invalidArguments", f"argument 'create': {cid!r} is not a valid creation id")
    if len(create) > ctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", f"maxObjectsInSet is {ctx.limits.max_objects_in_set}")
    wanted = [obj["id"] for obj in create.values() if isinstance(obj, dict) and is_id(obj.get("id"))]
    originals, from_state = datatype.read_for_copy(ctx, from_account_id, list(dict.fromkeys(wanted)))
    _check_state(if_from_in_state, from_state)
    id_properties = frozenset(getattr(datatype, "id_properties", ()))
    ids = _Ids(ctx)
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    copied: list[str] = []
    with datatype.write(ctx, account_id) as tx:
        old_state = datatype.state(ctx, tx)
        _check_state(if_in_state, old_state)
        for cid, obj in create.items():
            try:
                if not isinstance(obj, dict) or not is_id(obj.get("id")):
                    raise SetError("invalidProperties", "a copy needs the 'id' of the original", properties=["id"])
                original = originals.get(obj["id"])
                if original is None:
                    raise SetError("notFound", f"no record {obj['id']!r} in {from_account_id!r}")
                overrides = {k: v for k, v in obj.items() if k != "id"}
                _check_create_props(datatype, overrides)
                props = datatype.copy(ctx, tx, from_account_id, original, ids.in_object(overrides, id_properties))
                ids.local[cid] = props["id"]
                created[cid] = dict(props)
                copied.append(obj["id"])
            except SetError as e:
                not_created[cid] = e.to_json()
    new_state = datatype.committed_state(ctx, tx)
    ctx.created_ids.update(ids.local)
    responses: list[tuple[str, Mapping[str, Any]]] = [
        (
            f"{datatype.name}/copy",
            {
                "fromAccountId": from_account_id,
                "accountId": account_id,
                "oldState": to_state(old_state),
                "newState": to_state(new_state),
                "created": created or None,
                "notCreated": not_created or None,
            },
        )
    ]
    if destroy_original and copied:
        set_args = {"accountId": from_account_id, "ifInState": destroy_from_if_in_state, "destroy": copied}
        try:
            responses.extend(set_(datatype, ctx, set_args))
        except MethodError as e:
            responses.append(("error", e.to_json()))
    return responses


def _read_query(datatype: Any, ctx: CallContext, r: ArgReader) -> Query:
    filter_ = r.any("filter", None, nullable=True)
    if filter_ is not None:
        validate_filter(filter_, frozenset(getattr(datatype, "filter_conditions", ())))
    sort = parse_sort(r.any("sort", None, nullable=True), datatype, ctx.limits.collation_algorithms)
    return Query(filter_, sort)


def query(datatype: Any, ctx: CallContext, args: dict[str, Any]) -> Responses:
    """Foo/query (RFC 8620 §5.5): the type returns every matching id in
    order (or, told ``Query.limit_hint``, at least the first that many, with
    the total when ``Query.need_total``); windowing (position/anchor/limit)
    and total happen here."""
    r = ArgReader(args)
    account_id = ctx.account(r.id("accountId"))
    q = _read_query(datatype, ctx, r)
    position = r.int("position", 0)
    anchor = r.id("anchor", None, nullable=True)
    anchor_offset = r.int("anchorOffset", 0)
    limit = r.unsigned("limit", None, nullable=True)
    calculate_total = r.boolean("calculateTotal", False)
    extra = _extra(r, getattr(datatype, "query_arguments", {}))
    r.finish()
    max_limit = ctx.limits.max_query_limit
    effective = max_limit if limit is None or limit > max_limit else limit
    # an anchor or a negative position needs the whole result; else the window's end
    hint = position + effective if anchor is None and position >= 0 else None
    q = Query(q.filter, q.sort, extra, limit_hint=hint, need_total=calculate_total)
    result = datatype.query(ctx, account_id, q)
    ids = list(result.ids)
    total = len(ids) if result.total is None else result.total
    if anchor is not None:
        try:
            index = ids.index(anchor)
        except ValueError:
            raise MethodError("anchorNotFound", f"{anchor!r} is not in the results") from None
        start = max(0, index + anchor_offset)
    else:
        start = position if position >= 0 else max(0, total + position)
    response: dict[str, Any] = {
        "accountId": account_id,
        "queryState": to_state(result.query_state),
        "canCalculateChanges": bool(result.can_calculate_changes),
        "position": start,
        "ids": ids[start : start + effective],
    }
    if calculate_total:
        response["total"] = total
    if effective != limit:
        response["limit"] = effective
    return [(f"{datatype.name}/query", response)]


def query_changes(datatype: Any, ctx: CallContext, args: dict[str, Any]) -> Responses:
    """Foo/queryChanges (RFC 8620 §5.6)."""
    r = ArgReader(args)
    account_id = ctx.account(r.id("accountId"))
    q = _read_query(datatype, ctx, r)
    since_query_state = r.string("sinceQueryState")
    max_changes = r.unsigned("maxChanges", None, nullable=True)
    up_to_id = r.id("upToId", None, nullable=True)
    calculate_total = r.boolean("calculateTotal", False)
    extra = _extra(r, getattr(datatype, "query_arguments", {}))
    r.finish()
    q = Query(q.filter, q.sort, extra)
    since = parse_state(since_query_state, "cannotCalculateChanges")
    hook = getattr(datatype, "query_changes", None)
    if hook is None:
        raise MethodError("cannotCalculateChanges", f"{datatype.name}/queryChanges is not supported")
    try:
        result = hook(ctx, account_id, q, since, up_to_id, max_changes)
    except CannotCalculateChanges as e:
        raise MethodError("cannotCalculateChanges", str(e) or None) from None
    if max_changes is not None and len(result.removed) + len(result.added) > max_changes:
        raise MethodError("tooManyChanges", f"more than {max_changes} changes")
    response: dict[str, Any] = {
        "accountId": account_id,
        "oldQueryState": since_query_state,
        "newQueryState": to_state(result.new_query_state),
        "removed": list(result.removed),
        "added": [{"id": i, "index": index} for i, index in sorted(result.added, key=lambda a: a[1])],
    }
    if calculate_total:
        response["total"] = result.total
    return [(f"{datatype.name}/queryChanges", response)]


def standard_methods(datatype: Any) -> dict[str, Method]:
    """Registry entries for the standard methods ``datatype`` supports."""
    methods: dict[str, Method] = {}

    def add(suffix: str, fn: Callable[..., Responses], *hooks: str) -> None:
        if all(hasattr(datatype, h) for h in hooks):
            methods[f"{datatype.name}/{suffix}"] = Method(datatype.capability, partial(fn, datatype))

    set_hooks = ("write", "state", "lookup", "create", "update", "destroy", "committed_state")
    add("get", get, "get")
    add("changes", changes, "changes_since")
    add("set", set_, *set_hooks)
    add("copy", copy, "read_for_copy", "copy", *set_hooks)
    add("query", query, "query")
    add("queryChanges", query_changes, "query")
    return methods
