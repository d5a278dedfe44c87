"""`Mesh` against two real daemons (see conftest.py): `laptop` and `mini`,
where `llm_inference` (an http capability on a stand-in Ollama's
`/api/generate`) and `chat` (an ollama capability) prefer the mini."""

from __future__ import annotations

import socket
from pathlib import Path

import ollama
import pytest

import agentmesh
from agentmesh import Event, Live, Mesh

from .conftest import Daemons

GENERATE = {"model": "tiny", "prompt": "hello", "stream": False}


async def test_the_seeds_call_on_the_laptop_is_served_by_the_mini(laptop: Mesh, daemons: Daemons) -> None:
    answer = await laptop.route(capability="llm_inference", payload=GENERATE, prefer_node=daemons.mini)
    assert (answer.node, answer.status, answer.wake) == (daemons.mini, 200, None)
    assert answer.body["response"] == "[mini] w1 w2"
    assert answer.body["done"] is True


async def test_a_call_goes_where_the_capability_is_placed_or_to_the_preferred_node(
    laptop: Mesh, daemons: Daemons
) -> None:
    assert (await laptop.route("llm_inference", GENERATE)).node == daemons.mini
    on_laptop = await laptop.route("llm_inference", GENERATE, prefer_node=daemons.laptop)
    assert (on_laptop.node, on_laptop.body["response"]) == (daemons.laptop, "[laptop] w1 w2")
    async with Mesh(base_url=daemons.mini_url, api_key=daemons.key) as mini:
        assert (await mini.route("llm_inference", GENERATE)).node == daemons.mini


async def test_an_endpoints_error_is_its_answer_not_an_exception(laptop: Mesh, daemons: Daemons) -> None:
    answer = await laptop.route("llm_inference", {"model": "absent", "prompt": "hi", "stream": False})
    assert (answer.node, answer.status) == (daemons.mini, 404)
    assert "not found" in answer.body["error"]


async def test_the_meshs_refusals_are_typed_exceptions_with_the_apis_code(laptop: Mesh) -> None:
    with pytest.raises(agentmesh.UnknownCapability) as unknown:
        await laptop.route("llm_inferense", GENERATE)
    assert (unknown.value.code, unknown.value.status) == ("unknown_capability", 404)
    assert unknown.value.message == 'unknown capability "llm_inferense"; did you mean "llm_inference"?'
    with pytest.raises(agentmesh.BadPreferNode) as bad_node:
        await laptop.route("llm_inference", GENERATE, prefer_node="agent-elsewhere")
    assert (bad_node.value.code, bad_node.value.status) == ("bad_prefer_node", 400)


async def test_a_wrong_key_is_unauthorized_for_calls_and_for_the_event_stream(daemons: Daemons) -> None:
    async with Mesh(base_url=daemons.laptop_url, api_key="not-the-key") as wrong:
        with pytest.raises(agentmesh.Unauthorized) as refused:
            await wrong.status()
        assert (refused.value.code, refused.value.status) == ("unauthorized", 401)
        with pytest.raises(agentmesh.Unauthorized):
            async for _ in wrong.events():
                pass


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_daemon_that_does_not_answer_is_daemon_unreachable(daemons: Daemons) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with Mesh(base_url=url, api_key=daemons.key) as absent:
        with pytest.raises(agentmesh.DaemonUnreachable) as unreachable:
            await absent.route("llm_inference", GENERATE)
        assert unreachable.value.code == "daemon_unreachable"
        assert unreachable.value.message.startswith(f"cannot reach the mesh daemon at {url}: ")
        with pytest.raises(agentmesh.DaemonUnreachable):
            async for _ in absent.events():
                pass


async def test_mesh_finds_the_daemon_from_the_nearest_env_file(
    daemons: Daemons, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listen = daemons.laptop_url.removeprefix("http://")
    (tmp_path / ".env").write_text(f"AGENT_NODE_ID={daemons.laptop}\nMESH_LISTEN={listen}\nMESH_API_KEY={daemons.key}\n")
    (tmp_path / "agent" / "work").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "agent" / "work")
    monkeypatch.delenv("MESH_LISTEN", raising=False)
    monkeypatch.delenv("MESH_API_KEY", raising=False)
    async with Mesh() as found:
        assert found.base_url == daemons.laptop_url
        assert (await found.status()).name == daemons.laptop


async def test_status_is_this_nodes_with_its_objects(laptop: Mesh, daemons: Daemons) -> None:
    status = await laptop.status()
    assert (status.name, status.role, status.online) == (daemons.laptop, "primary", True)
    assert status.revision is not None and status.last_error is None
    capability = next(o for o in status.objects if (o.kind, o.name) == ("Capability", "llm_inference"))
    assert capability.ready, capability
    assert capability.details["servedBy"] == daemons.mini


async def test_without_a_handoff_policy_there_are_no_sessions_to_write_to_or_hand_over(laptop: Mesh) -> None:
    assert await laptop.sessions() == []
    with pytest.raises(agentmesh.NotFound) as unknown:
        await laptop.can_write("c-1")
    assert unknown.value.message == "no conversation c-1 on this node"
    with pytest.raises(agentmesh.BadRequest):
        await laptop.can_write("../etc")
    with pytest.raises(agentmesh.NotFound) as refused:
        await laptop.handoff("c-1", to="agent-elsewhere")
    assert (refused.value.status, refused.value.message) == (404, "no conversation c-1 on this node")


async def test_the_event_stream_sends_the_recent_events_then_live(laptop: Mesh) -> None:
    seen: list[agentmesh.StreamMessage] = []
    async for message in laptop.events():
        seen.append(message)
        if isinstance(message, Live):
            break
    events = [m for m in seen if isinstance(m, Event)]
    assert events and len(events) == len(seen) - 1, seen
    assert all(e.event_type in ("Normal", "Warning") and e.time for e in events), events


async def test_ollamas_own_client_streams_through_the_laptops_proxy_from_the_mini(
    laptop: Mesh, daemons: Daemons
) -> None:
    client = ollama.AsyncClient(host=laptop.ollama_host(), headers=laptop.auth_headers())
    chunks = [chunk async for chunk in await client.generate(model="tiny", prompt="hi", stream=True)]
    assert "".join(chunk.response or "" for chunk in chunks) == "[mini] w1 w2"
    assert chunks[-1].done and not any(chunk.done for chunk in chunks[:-1])
    assert laptop.ollama_host() == f"{daemons.laptop_url}/ollama"
