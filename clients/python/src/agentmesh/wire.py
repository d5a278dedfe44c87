"""The mesh API's JSON answers as typed values (the daemon's `src/api/wire.rs`),
read leniently: a field a newer daemon adds is ignored, one an older daemon
lacks takes its default. Each keeps the JSON it was read from as `raw`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

Json = Any


def _str(data: dict[str, Json], name: str, default: str = "") -> str:
    value = data.get(name)
    return value if isinstance(value, str) else default


def _opt_str(data: dict[str, Json], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) else None


def _int(data: dict[str, Json], name: str, default: int = 0) -> int:
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _bool(data: dict[str, Json], name: str, default: bool = False) -> bool:
    value = data.get(name)
    return value if isinstance(value, bool) else default


def _strs(data: dict[str, Json], name: str) -> list[str]:
    value = data.get(name)
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _dicts(data: dict[str, Json], name: str) -> list[dict[str, Json]]:
    value = data.get(name)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


@dataclass(frozen=True)
class WakeWait:
    """A call's wait for the node it would rather use to wake up: which node,
    how the wake went out (`LAN`, `Tailscale peer lan-box`), how long the
    call waited, and whether the node answered in time (else the call went on
    without it)."""

    node: str
    via: str
    waited_ms: int
    answered: bool

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> WakeWait:
        return cls(_str(data, "node"), _str(data, "via"), _int(data, "waitedMs"), _bool(data, "answered"))


@dataclass(frozen=True)
class Routed:
    """The answer of a routed call: the node whose endpoint answered, the
    endpoint's HTTP status (an endpoint's 500 is an answer, not an error) and
    its body (its JSON, or its text as a string); `wake` when the call waited
    for a wake."""

    node: str
    status: int
    body: Json
    wake: WakeWait | None = None

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> Routed:
        wake = data.get("wake")
        return cls(
            node=_str(data, "node"),
            status=_int(data, "status"),
            body=data.get("body"),
            wake=WakeWait.from_json(wake) if isinstance(wake, dict) else None,
        )


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> Condition:
        return cls(
            _str(data, "type"),
            _str(data, "status"),
            _str(data, "reason"),
            _str(data, "message"),
            _str(data, "lastTransitionTime"),
        )


@dataclass(frozen=True)
class ObjectStatus:
    kind: str
    name: str
    ready: bool
    conditions: list[Condition]
    details: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> ObjectStatus:
        details = data.get("details")
        return cls(
            kind=_str(data, "kind"),
            name=_str(data, "name"),
            ready=_bool(data, "ready"),
            conditions=[Condition.from_json(c) for c in _dicts(data, "conditions")],
            details={str(k): str(v) for k, v in details.items()} if isinstance(details, dict) else {},
        )


@dataclass(frozen=True)
class NodeStatus:
    """This node as `meshctl status -o json` shows it (`GET /api/v1/status`)."""

    name: str
    role: str
    online: bool
    last_seen: str | None
    revision: str | None
    last_error: str | None
    objects: list[ObjectStatus]
    paused: bool
    raw: dict[str, Json] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> NodeStatus:
        return cls(
            name=_str(data, "name"),
            role=_str(data, "role"),
            online=_bool(data, "online"),
            last_seen=_opt_str(data, "lastSeen"),
            revision=_opt_str(data, "revision"),
            last_error=_opt_str(data, "lastError"),
            objects=[ObjectStatus.from_json(o) for o in _dicts(data, "objects")],
            paused=_bool(data, "paused"),
            raw=data,
        )


@dataclass(frozen=True)
class Session:
    """One conversation as this node sees it (`GET /api/v1/sessions[/ID]`)."""

    id: str
    policy: str
    owner: str | None
    epoch: int | None
    phase: str
    """`owned`, `frozen` (handing over), `forcing` or `unclaimed`."""
    path: str
    hash: str | None
    files: int
    conflicts: list[str]
    stale: list[str]
    peer_hash: str | None
    in_sync: bool
    holders: list[str]
    writable: bool
    """The agent on this node may write to it now: owned here, not frozen."""
    handoff: str | None
    """While it is frozen here for a handoff: that handoff's id (its progress: `GET /api/v1/handoff/{id}`)."""
    target: str | None
    """While it is frozen here for a handoff: the node it is handed to."""
    raw: dict[str, Json] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> Session:
        epoch = data.get("epoch")
        return cls(
            id=_str(data, "id"),
            policy=_str(data, "policy"),
            owner=_opt_str(data, "owner"),
            epoch=epoch if isinstance(epoch, int) else None,
            phase=_str(data, "phase"),
            path=_str(data, "path"),
            hash=_opt_str(data, "hash"),
            files=_int(data, "files"),
            conflicts=_strs(data, "conflicts"),
            stale=_strs(data, "stale"),
            peer_hash=_opt_str(data, "peerHash"),
            in_sync=_bool(data, "inSync"),
            holders=_strs(data, "holders"),
            writable=_bool(data, "writable"),
            handoff=_opt_str(data, "handoff"),
            target=_opt_str(data, "target"),
            raw=data,
        )


@dataclass(frozen=True)
class HandoffProgress:
    """How a handoff started on this node goes (`GET /api/v1/handoff/{id}`):
    one line per step so far, and once `done`, whether it `succeeded`, else
    the step that failed (`freeze`, `barrier`, `accept`, `release`); `owner`
    and `epoch` are the conversation's now."""

    handoff: str
    policy: str
    conversation: str
    target: str
    timeout_ms: int
    lines: list[str]
    done: bool
    succeeded: bool
    failed_step: str | None
    message: str | None
    owner: str
    epoch: int

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> HandoffProgress:
        return cls(
            handoff=_str(data, "handoff"),
            policy=_str(data, "policy"),
            conversation=_str(data, "conversation"),
            target=_str(data, "target"),
            timeout_ms=_int(data, "timeoutMs"),
            lines=_strs(data, "lines"),
            done=_bool(data, "done"),
            succeeded=_bool(data, "succeeded"),
            failed_step=_opt_str(data, "failedStep"),
            message=_opt_str(data, "message"),
            owner=_str(data, "owner"),
            epoch=_int(data, "epoch"),
        )


# The messages of the event stream (`GET /api/v1/events`), by their `type`.


@dataclass(frozen=True)
class Event:
    """A controller event: `event_type` is `Normal` or `Warning`; `object` is
    `Kind/name`, empty for the node as a whole."""

    time: str
    event_type: str
    reason: str
    object: str
    message: str


@dataclass(frozen=True)
class Log:
    """A line a Service wrote."""

    service: str
    stream: str
    line: str


@dataclass(frozen=True)
class Live:
    """Sent once after the recent events: what follows happens now."""


@dataclass(frozen=True)
class Lagged:
    """The client fell behind; this many messages were dropped for it."""

    skipped: int


@dataclass(frozen=True)
class Ack:
    action: str


@dataclass(frozen=True)
class StreamError:
    message: str


@dataclass(frozen=True)
class Unknown:
    """A message of a type this client does not know (a newer daemon's)."""

    type: str
    raw: dict[str, Json]


StreamMessage = Union[Event, Log, Live, Lagged, Ack, StreamError, Unknown]


def stream_message(data: dict[str, Json]) -> StreamMessage:
    """One message of the event stream, from its JSON."""
    kind = _str(data, "type")
    if kind == "event":
        return Event(
            _str(data, "time"), _str(data, "eventType"), _str(data, "reason"), _str(data, "object"), _str(data, "message")
        )
    if kind == "log":
        return Log(_str(data, "service"), _str(data, "stream"), _str(data, "line"))
    if kind == "live":
        return Live()
    if kind == "lagged":
        return Lagged(_int(data, "skipped"))
    if kind == "ack":
        return Ack(_str(data, "action"))
    if kind == "error":
        return StreamError(_str(data, "message"))
    return Unknown(kind, data)
