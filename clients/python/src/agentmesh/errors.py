"""The mesh API's errors as exceptions: each carries the API's `error` code,
its `message` and the HTTP status, and the common codes have a class of
their own, so an agent can `except UnknownCapability` rather than compare
strings."""

from __future__ import annotations

import json


class MeshError(Exception):
    """An error answered by the mesh API (`{error, message}`), or met on the
    way to it (`DaemonUnreachable`, `HandoffUndecided`)."""

    def __init__(self, code: str, message: str, status: int | None = None, diagnostics: list[str] | None = None):
        super().__init__(f"{message} ({code})" if status is None else f"{message} ({code}, HTTP {status})")
        self.code = code
        self.message = message
        self.status = status
        # For a rejected bundle: every error, with file:line.
        self.diagnostics = diagnostics or []


class Unauthorized(MeshError):
    """`unauthorized`: no key, or the wrong one."""


class BadRequest(MeshError):
    """`bad_request`: the request is not the API's shape (an unknown field is named)."""


class NotFound(MeshError):
    """`not_found`: no such conversation, handoff or object on this node."""


class NotReady(MeshError):
    """`not_ready`, `no_set`: the daemon has no manifests in force yet."""


class UnknownCapability(MeshError):
    """`unknown_capability`: no Capability of that name (the message suggests one)."""


class BadPreferNode(MeshError):
    """`bad_prefer_node`: the preferred node does not host the capability."""


class Unreachable(MeshError):
    """`unreachable`: no node could take the call; nothing was sent."""


class WentSilent(MeshError):
    """`went_silent`: the node that took the call went silent before it answered.
    The call may have run there: it is not tried elsewhere."""


class CallTimedOut(MeshError):
    """`timeout`: the node that took the call did not answer in time; it may have run."""


class BadGateway(MeshError):
    """`bad_gateway`: the call reached a node but broke; it may have run."""


class HandoffRefused(MeshError):
    """A handoff that was not started: `owner_online`, `target_offline`,
    `rejected`, `no_target`, `unknown_node`, `force_not_allowed`. The
    conversation stays where it was."""


class DaemonUnreachable(MeshError):
    """This node's daemon did not answer at all (code `daemon_unreachable`)."""

    def __init__(self, url: str, reason: str):
        super().__init__("daemon_unreachable", f"cannot reach the mesh daemon at {url}: {reason}")
        self.url = url


class HandoffUndecided(MeshError):
    """A handoff followed past its timeout and a grace period without an
    outcome (code `no_outcome`): look at `Mesh.sessions()`."""


_BY_CODE: dict[str, type[MeshError]] = {
    "unauthorized": Unauthorized,
    "bad_request": BadRequest,
    "not_found": NotFound,
    "not_ready": NotReady,
    "no_set": NotReady,
    "unknown_capability": UnknownCapability,
    "bad_prefer_node": BadPreferNode,
    "unreachable": Unreachable,
    "went_silent": WentSilent,
    "timeout": CallTimedOut,
    "bad_gateway": BadGateway,
    "owner_online": HandoffRefused,
    "target_offline": HandoffRefused,
    "rejected": HandoffRefused,
    "no_target": HandoffRefused,
    "unknown_node": HandoffRefused,
    "force_not_allowed": HandoffRefused,
}


def error_from_answer(status: int, body: bytes) -> MeshError:
    """The exception for an error answer: its `{error, message}` when it has
    that shape (a code without a class of its own gives a plain MeshError),
    else `http_<status>` with the body's text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        code = parsed["error"]
        message = parsed.get("message")
        diagnostics = parsed.get("diagnostics")
        return _BY_CODE.get(code, MeshError)(
            code,
            message if isinstance(message, str) else code,
            status,
            [str(line) for line in diagnostics] if isinstance(diagnostics, list) else None,
        )
    text = body.decode("utf-8", "replace").strip()
    return MeshError(f"http_{status}", text or f"HTTP {status} without a body", status)
