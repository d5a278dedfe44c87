"""The API's answers and errors read into typed values."""

from __future__ import annotations

import json

import pytest

import agentmesh
from agentmesh.errors import error_from_answer
from agentmesh.wire import Event, Lagged, Live, Log, Routed, Session, Unknown, WakeWait, stream_message


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "unauthorized", agentmesh.Unauthorized),
        (400, "bad_request", agentmesh.BadRequest),
        (404, "not_found", agentmesh.NotFound),
        (503, "not_ready", agentmesh.NotReady),
        (503, "no_set", agentmesh.NotReady),
        (404, "unknown_capability", agentmesh.UnknownCapability),
        (400, "bad_prefer_node", agentmesh.BadPreferNode),
        (503, "unreachable", agentmesh.Unreachable),
        (504, "went_silent", agentmesh.WentSilent),
        (504, "timeout", agentmesh.CallTimedOut),
        (502, "bad_gateway", agentmesh.BadGateway),
        (409, "owner_online", agentmesh.HandoffRefused),
        (409, "target_offline", agentmesh.HandoffRefused),
        (403, "force_not_allowed", agentmesh.HandoffRefused),
        (409, "follows_git", agentmesh.MeshError),
    ],
)
def test_an_error_answer_is_raised_as_its_codes_class_with_code_message_and_status(
    status: int, code: str, kind: type[agentmesh.MeshError]
) -> None:
    error = error_from_answer(status, json.dumps({"error": code, "message": "why"}).encode())
    assert type(error) is kind
    assert (error.code, error.message, error.status) == (code, "why", status)
    assert str(error) == f"why ({code}, HTTP {status})"


def test_an_error_answer_that_is_not_the_apis_shape_keeps_its_status_and_text() -> None:
    error = error_from_answer(502, b"Bad Gateway\n")
    assert (type(error), error.code, error.message, error.status) == (agentmesh.MeshError, "http_502", "Bad Gateway", 502)
    rejected = error_from_answer(422, b'{"error": "invalid", "message": "2 errors", "diagnostics": ["a.yaml:1:1: x"]}')
    assert (rejected.code, rejected.diagnostics) == ("invalid", ["a.yaml:1:1: x"])


def test_a_routed_answer_reads_with_and_without_a_wake() -> None:
    plain = Routed.from_json({"node": "mini", "status": 200, "body": {"response": "hi"}})
    assert plain == Routed("mini", 200, {"response": "hi"}, None)
    woken = Routed.from_json(
        {
            "node": "mini",
            "status": 200,
            "body": "text",
            "wake": {"node": "mini", "via": "LAN", "waitedMs": 3120, "answered": True},
            "newerField": 1,
        }
    )
    assert woken.wake == WakeWait("mini", "LAN", 3120, True)
    assert woken.body == "text"


def test_stream_messages_read_by_their_type() -> None:
    event = {"type": "event", "time": "t", "eventType": "Normal", "reason": "Applied", "object": "", "message": "r1"}
    assert stream_message(event) == Event("t", "Normal", "Applied", "", "r1")
    assert stream_message({"type": "log", "service": "web", "stream": "stdout", "line": "hi"}) == Log("web", "stdout", "hi")
    assert stream_message({"type": "live"}) == Live()
    assert stream_message({"type": "lagged", "skipped": 3}) == Lagged(3)
    assert stream_message({"type": "newThing", "x": 1}) == Unknown("newThing", {"type": "newThing", "x": 1})


def test_a_session_frozen_for_a_handoff_names_it_and_its_target() -> None:
    base = {"id": "c-1", "policy": "chats", "owner": "laptop", "epoch": 3, "path": "/s/c-1", "files": 2}
    frozen = Session.from_json({**base, "phase": "frozen", "handoff": "h-7", "target": "mini"})
    assert (frozen.phase, frozen.handoff, frozen.target, frozen.writable) == ("frozen", "h-7", "mini", False)
    owned = Session.from_json({**base, "phase": "owned", "writable": True})
    assert (owned.handoff, owned.target, owned.writable) == (None, None, True)
