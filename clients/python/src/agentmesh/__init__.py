"""The agent's client of the agentmesh mesh API.

    from agentmesh import Mesh

    async with Mesh() as mesh:
        answer = await mesh.route(capability="llm_inference", payload={...}, prefer_node="agent-home-mini")
        print(answer.node, answer.status, answer.body)
"""

from .client import Mesh
from .errors import (
    BadGateway,
    BadPreferNode,
    BadRequest,
    CallTimedOut,
    DaemonUnreachable,
    HandoffRefused,
    HandoffUndecided,
    MeshError,
    NotFound,
    NotReady,
    Unauthorized,
    UnknownCapability,
    Unreachable,
    WentSilent,
)
from .settings import SettingsError
from .wire import (
    Ack,
    Condition,
    Event,
    HandoffProgress,
    Lagged,
    Live,
    Log,
    NodeStatus,
    ObjectStatus,
    Routed,
    Session,
    StreamError,
    StreamMessage,
    Unknown,
    WakeWait,
)

__all__ = [
    "Ack",
    "BadGateway",
    "BadPreferNode",
    "BadRequest",
    "CallTimedOut",
    "Condition",
    "DaemonUnreachable",
    "Event",
    "HandoffProgress",
    "HandoffRefused",
    "HandoffUndecided",
    "Lagged",
    "Live",
    "Log",
    "Mesh",
    "MeshError",
    "NodeStatus",
    "NotFound",
    "NotReady",
    "ObjectStatus",
    "Routed",
    "Session",
    "SettingsError",
    "StreamError",
    "StreamMessage",
    "Unauthorized",
    "Unknown",
    "UnknownCapability",
    "Unreachable",
    "WakeWait",
    "WentSilent",
]
