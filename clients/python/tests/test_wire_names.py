"""Every JSON name the client reads is one the daemon writes: each reader runs
on a dict that records the names asked of it, and each name must be in the
properties of its schema in docs/openapi.json (generated from the daemon's
own wire types), so a rename on the daemon's side fails here instead of
reading as a silent default."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentmesh.errors import error_from_answer
from agentmesh.wire import Condition, HandoffProgress, NodeStatus, ObjectStatus, Routed, Session, WakeWait, stream_message

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))["components"]["schemas"]
    return schemas


class _Recording(dict[str, Any]):
    """A JSON object that notes every name read from it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def _names_read(reader: Callable[[dict[str, Any]], object], data: dict[str, Any] | None = None) -> set[str]:
    recording = _Recording(data or {})
    reader(recording)
    return recording.read


READERS: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
    ("Routed", Routed.from_json),
    ("WakeWait", WakeWait.from_json),
    ("Condition", Condition.from_json),
    ("ObjectStatus", ObjectStatus.from_json),
    ("NodeStatus", NodeStatus.from_json),
    ("Session", Session.from_json),
    ("HandoffProgress", HandoffProgress.from_json),
]


@pytest.mark.parametrize(("schema", "reader"), READERS, ids=[name for name, _ in READERS])
def test_every_name_a_reader_reads_is_in_its_schema(schema: str, reader: Callable[[dict[str, Any]], object]) -> None:
    read = _names_read(reader)
    assert read, f"{schema}: nothing read"
    properties = set(_schemas()[schema]["properties"])
    assert read <= properties, f"{schema} has no {sorted(read - properties)} (it has {sorted(properties)})"


def test_every_name_an_event_stream_message_reads_is_in_its_variant() -> None:
    variants = {
        variant["properties"]["type"]["const"]: set(variant["properties"])
        for variant in _schemas()["StreamMessage"]["oneOf"]
    }
    for kind in ("event", "log", "live", "lagged", "ack", "error"):
        read = _names_read(stream_message, {"type": kind})
        assert read <= variants[kind], f"the {kind} message has no {sorted(read - variants[kind])}"


def test_every_name_an_error_answer_reads_is_in_the_error_body(monkeypatch: pytest.MonkeyPatch) -> None:
    properties = set(_schemas()["ErrorBody"]["properties"])
    recording = _Recording({"error": "not_found"})
    # The reader parses the body itself: it is handed the recording instead.
    monkeypatch.setattr(json, "loads", lambda _: recording)
    error = error_from_answer(404, b"{}")
    assert error.code == "not_found"
    assert recording.read and recording.read <= properties, sorted(recording.read - properties)
