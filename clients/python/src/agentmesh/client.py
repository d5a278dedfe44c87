"""`Mesh`: the agent's handle on its own node's mesh API, over httpx (and
websockets for the event stream). Every call sends the bearer key; every
error answer becomes a `MeshError` carrying the API's `error` code."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import websockets
from websockets.asyncio.client import connect

from .errors import DaemonUnreachable, HandoffUndecided, MeshError, error_from_answer
from .settings import find_default_base_url, locate, locate_key
from .wire import HandoffProgress, NodeStatus, Routed, Session, StreamMessage, stream_message

# A routed call may wait for a node to wake and for an endpoint (an LLM) that
# takes its time; the daemon ends it by its own timeouts well before this.
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=5.0)

# How often a handoff's progress is asked for, and how long after the
# handoff's own timeout it is still followed (as `meshctl handoff`).
HANDOFF_POLL = 0.2
HANDOFF_GRACE = 30.0


class Mesh:
    """This node's mesh API. Without `base_url`, it is found as `meshctl`
    finds it (`MESH_LISTEN` and `MESH_API_KEY` from the environment, else the
    nearest `.env`, or `env_file`; without `MESH_LISTEN`, this node's tailnet
    IP when the daemon takes a connection there, else loopback, looked for
    again when a call finds no daemon there); `api_key` likewise, and only
    the key is read when `base_url` is given. Use it as an async context
    manager, or call `aclose()`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        env_file: str | Path | None = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
    ):
        env_path = Path(env_file) if env_file is not None else None
        # Whether the daemon's address was found without `MESH_LISTEN`, and
        # so may be elsewhere later (Tailscale came up after it was looked for).
        self._may_move = False
        if not base_url:
            found = locate(env_path)
            base_url = found.base_url
            self._may_move = found.defaulted
            api_key = api_key if api_key is not None else found.api_key
        elif api_key is None:
            api_key = locate_key(env_path)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._timeout = timeout
        self._http = self._client()

    def _client(self) -> httpx.AsyncClient:
        # The daemon is on loopback or the tailnet: no proxy from the environment.
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.auth_headers(), timeout=self._timeout, trust_env=False
        )

    async def _found_elsewhere(self) -> bool:
        """Whether the daemon, found without `MESH_LISTEN`, is now found at
        another address (looked for off the event loop); the calls go there."""
        if not self._may_move:
            return False
        base_url = await asyncio.to_thread(find_default_base_url)
        if base_url == self.base_url:
            return False
        await self._http.aclose()
        self.base_url = base_url
        self._http = self._client()
        return True

    async def __aenter__(self) -> Mesh:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def auth_headers(self) -> dict[str, str]:
        """The `Authorization` header every call sends (none without a key,
        for a Mesh that lets callers in by their Tailscale identity)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def ollama_host(self) -> str:
        """This node's Ollama proxy, for Ollama's own clients
        (`ollama.AsyncClient(host=…, headers=mesh.auth_headers())`; as
        `OLLAMA_HOST` alone it carries no key, so only a caller the Mesh lets
        in by its Tailscale identity gets through): it passes
        every request, streams included, to the node serving the Ollama
        capability, failing over as `route` does."""
        return f"{self.base_url}/ollama"

    async def route(self, capability: str, payload: Any, prefer_node: str | None = None) -> Routed:
        """Calls `capability` with `payload` (JSON) on the first node that
        takes it, `prefer_node` first when given. The endpoint's own answer,
        whatever its status, is returned; the mesh's refusals are raised
        (`UnknownCapability`, `BadPreferNode`, `Unreachable`, `WentSilent`, …)."""
        body: dict[str, Any] = {"capability": capability, "payload": payload}
        if prefer_node is not None:
            body["preferNode"] = prefer_node
        return Routed.from_json(await self._call("POST", "/mesh/route", body))

    async def status(self) -> NodeStatus:
        """This node and its objects, as `meshctl status -o json` shows them."""
        return NodeStatus.from_json(await self._call("GET", "/api/v1/status"))

    async def sessions(self) -> list[Session]:
        """Every conversation of every HandoffPolicy on this node."""
        answer = await self._call("GET", "/api/v1/sessions")
        return [Session.from_json(item) for item in answer if isinstance(item, dict)]

    async def session(self, conversation: str) -> Session:
        """One conversation; `NotFound` when this node knows none of that id."""
        return Session.from_json(await self._call("GET", f"/api/v1/sessions/{quote(conversation, safe='')}"))

    async def can_write(self, conversation: str) -> bool:
        """The agent's write gate: whether it may write to `conversation` now
        (owned by this node and not frozen for a handoff). A write anywhere
        else is stale and is kept aside by the owner. `NotFound` when this
        node knows no such conversation."""
        return (await self.session(conversation)).writable

    async def handoff(
        self,
        conversation: str,
        to: str | None = None,
        *,
        timeout: str | None = None,
        force: bool = False,
        on_progress: Callable[[str], None] | None = None,
    ) -> HandoffProgress:
        """Hands `conversation` to node `to` (by default the policy's
        `defaultTarget`, else the other node) and follows it to its end:
        `on_progress` gets each step's line as it happens. Returns the last
        progress: `succeeded`, else `failed_step`, with the owner and epoch
        now (a failed handoff leaves this node the owner). `timeout` is a
        duration such as `30s` (by default the policy's); `force` takes over a
        conversation whose owner is unreachable, when the policy allows it.
        A handoff that is not started raises (`HandoffRefused`, `NotFound`)."""
        request: dict[str, Any] = {"id": conversation}
        if to is not None:
            request["to"] = to
        if timeout is not None:
            request["timeout"] = timeout
        if force:
            request["force"] = True
        progress = HandoffProgress.from_json(await self._call("POST", "/api/v1/handoff", request))
        deadline = time.monotonic() + progress.timeout_ms / 1000 + HANDOFF_GRACE
        shown = 0
        while True:
            for line in progress.lines[shown:]:
                if on_progress is not None:
                    on_progress(line)
            shown = len(progress.lines)
            if progress.done:
                return progress
            if time.monotonic() >= deadline:
                raise HandoffUndecided(
                    "no_outcome",
                    f"handoff {progress.handoff} of {conversation} has no outcome after its timeout: see sessions()",
                )
            await asyncio.sleep(HANDOFF_POLL)
            path = f"/api/v1/handoff/{quote(progress.handoff, safe='')}"
            progress = HandoffProgress.from_json(await self._call("GET", path))

    async def events(self) -> AsyncIterator[StreamMessage]:
        """The event stream: the recent events, then `Live`, then events and
        Service log lines as they happen, until the daemon closes it."""
        url = "ws" + self.base_url[len("http") :] + "/api/v1/events"
        try:
            async with connect(url, additional_headers=self.auth_headers(), proxy=None) as socket:
                async for frame in socket:
                    data = json.loads(frame)
                    if isinstance(data, dict):
                        yield stream_message(data)
        except websockets.exceptions.InvalidStatus as refused:
            raise error_from_answer(refused.response.status_code, bytes(refused.response.body or b"")) from None
        except (OSError, asyncio.TimeoutError, websockets.exceptions.InvalidHandshake) as error:
            raise DaemonUnreachable(url, str(error) or type(error).__name__) from error
        except websockets.exceptions.ConnectionClosedError as error:
            raise DaemonUnreachable(url, f"the event stream broke: {error}") from error

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call: its JSON answer, or the error it answered raised."""
        try:
            try:
                answer = await self._http.request(method, path, json=body)
            except httpx.ConnectError:
                # Nothing was sent: safe to send again where the daemon is now.
                if not await self._found_elsewhere():
                    raise
                answer = await self._http.request(method, path, json=body)
        except httpx.TransportError as error:
            raise DaemonUnreachable(self.base_url, str(error) or type(error).__name__) from error
        if answer.is_error:
            raise error_from_answer(answer.status_code, answer.content)
        try:
            return answer.json()
        except ValueError as error:
            raise MeshError("bad_answer", f"{method} {path} answered what is not JSON: {error}", answer.status_code)
