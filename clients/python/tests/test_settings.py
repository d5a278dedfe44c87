"""How `Mesh()` finds the daemon, as `meshctl` does: tables over the pure rules."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentmesh import DaemonUnreachable, Mesh, client, settings
from agentmesh.settings import (
    SettingsError,
    api_key_from,
    base_url_for,
    context_file_in,
    default_base_url,
    find_env_file,
    parse_env,
    settings_from,
    takes_connections,
)


@pytest.mark.parametrize(
    ("with_env", "context", "expected"),
    [
        (["/n/a/b", "/n", "/srv/node"], "/srv/node", "/n/a/b/.env"),
        (["/n", "/srv/node"], "/srv/node", "/n/.env"),
        (["/n/a", "/n"], "/srv/node", "/n/a/.env"),
        (["/srv/node"], "/srv/node", "/srv/node/.env"),
        (["/"], "/srv/node", "/.env"),
        ([], "/srv/node", None),
        (["/srv/node"], None, None),
    ],
)
def test_the_nearest_folder_with_an_env_wins_then_the_context_file(
    with_env: list[str], context: str | None, expected: str | None
) -> None:
    found = find_env_file(Path("/n/a/b"), Path(context) if context else None, lambda folder: str(folder) in with_env)
    assert found == (Path(expected) if expected else None)


@pytest.mark.parametrize(
    ("macos", "home", "xdg", "expected"),
    [
        (False, "/home/al", None, "/home/al/.config/agentmesh/context"),
        (False, "/home/al", "/xdg", "/xdg/agentmesh/context"),
        (False, "/home/al", "", "/home/al/.config/agentmesh/context"),
        (False, "/home/al", "relative", "/home/al/.config/agentmesh/context"),
        (False, None, "/xdg", "/xdg/agentmesh/context"),
        (False, None, None, None),
        (True, "/home/al", "/xdg", "/home/al/Library/Application Support/agentmesh/context"),
        (True, None, None, None),
    ],
)
def test_the_context_file_is_in_the_platforms_config_folder(
    macos: bool, home: str | None, xdg: str | None, expected: str | None
) -> None:
    path = context_file_in(macos, Path(home) if home else None, xdg)
    assert path == (Path(expected) if expected else None)


def test_an_env_file_reads_as_meshctl_reads_it() -> None:
    text = (
        "# a node\n"
        "AGENT_NODE_ID=home\n"
        "export AGENT_ROLE = \"primary\"\n"
        "MESH_MANIFESTS=m # c\n"
        "MESH_API_KEY='k#1 x'\n"
        'QUOTED="a\\"b\\nc"\n'
        "not a setting\n"
        "EMPTY=\n"
    )
    assert parse_env(text) == {
        "AGENT_NODE_ID": "home",
        "AGENT_ROLE": "primary",
        "MESH_MANIFESTS": "m",
        "MESH_API_KEY": "k#1 x",
        "QUOTED": 'a"b\nc',
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    ("environ", "from_file", "url", "key"),
    [
        ({}, {}, "default", None),
        ({}, {"MESH_LISTEN": "100.64.0.2:8000", "MESH_API_KEY": "f"}, "http://100.64.0.2:8000", "f"),
        ({"MESH_LISTEN": "127.0.0.2:9000"}, {"MESH_LISTEN": "100.64.0.2:8000"}, "http://127.0.0.2:9000", None),
        ({"MESH_API_KEY": "e"}, {"MESH_API_KEY": "f"}, "default", "e"),
        ({"MESH_API_KEY": "  "}, {"MESH_API_KEY": "f"}, "default", None),
        ({"MESH_LISTEN": " "}, {"MESH_LISTEN": "100.64.0.2:8000"}, "default", None),
        ({"MESH_LISTEN": "0.0.0.0:8000"}, {}, "http://127.0.0.1:8000", None),
        ({"MESH_LISTEN": "[::]:8001"}, {}, "http://[::1]:8001", None),
        ({"MESH_LISTEN": "[fd7a::2]:8002"}, {}, "http://[fd7a::2]:8002", None),
    ],
)
def test_the_environment_wins_over_the_env_file_and_unspecified_addresses_are_dialled_on_loopback(
    environ: dict[str, str], from_file: dict[str, str], url: str, key: str | None
) -> None:
    found = settings_from(environ, from_file, Path("/n/.env"), lambda: "default")
    assert (found.base_url, found.api_key) == (url, key)
    assert api_key_from(environ, from_file) == key


@pytest.mark.parametrize(
    ("tailnet_ip", "answering", "url", "asked"),
    [
        ("100.101.1.2", True, "http://100.101.1.2:8000", [("100.101.1.2", 8000)]),
        ("100.101.1.2", False, "http://127.0.0.1:8000", [("100.101.1.2", 8000)]),
        (None, True, "http://127.0.0.1:8000", []),
        (None, False, "http://127.0.0.1:8000", []),
    ],
)
def test_without_mesh_listen_the_tailnet_ip_is_called_when_it_answers_else_loopback(
    tailnet_ip: str | None, answering: bool, url: str, asked: list[tuple[str, int]]
) -> None:
    dialled: list[tuple[str, int]] = []

    def answers(host: str, port: int) -> bool:
        dialled.append((host, port))
        return answering

    assert default_base_url(tailnet_ip, answers) == url
    assert dialled == asked


def test_a_connection_check_is_true_only_where_something_listens() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        assert takes_connections("127.0.0.1", port)
    assert not takes_connections("127.0.0.1", port)


def test_the_default_url_is_not_looked_for_when_mesh_listen_is_set() -> None:
    def never() -> str:
        raise AssertionError("Tailscale asked although MESH_LISTEN is set")

    found = settings_from({"MESH_LISTEN": "127.0.0.2:9000"}, {}, None, never)
    assert found.base_url == "http://127.0.0.2:9000"


async def test_a_mesh_given_its_url_reads_only_the_key_so_a_bad_listen_address_does_not_matter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text("MESH_LISTEN=not-an-address\nMESH_API_KEY=k1\n")
    monkeypatch.delenv("MESH_LISTEN", raising=False)
    monkeypatch.delenv("MESH_API_KEY", raising=False)
    async with Mesh(base_url="http://127.0.0.1:9/", env_file=env) as mesh:
        assert (mesh.base_url, mesh.api_key) == ("http://127.0.0.1:9", "k1")
    with pytest.raises(SettingsError, match=f'MESH_LISTEN "not-an-address" from {env} is not an address:port'):
        Mesh(env_file=env)


@pytest.mark.parametrize("listen", ["8000", "127.0.0.1", "127.0.0.1:port", ":8000", "127.0.0.1:70000"])
def test_a_listen_address_that_does_not_read_names_the_setting_and_where_it_came_from(listen: str) -> None:
    with pytest.raises(SettingsError, match=f'MESH_LISTEN "{listen}" from /n/.env is not an address:port'):
        base_url_for(listen, "/n/.env")


class _Sessions(BaseHTTPRequestHandler):
    """A daemon that knows no conversation."""

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def daemon_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sessions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


async def test_a_daemon_found_without_mesh_listen_is_looked_for_again_when_a_call_finds_none_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, daemon_url: str
) -> None:
    env = tmp_path / ".env"
    env.write_text("MESH_API_KEY=k1\n")
    monkeypatch.delenv("MESH_LISTEN", raising=False)
    monkeypatch.delenv("MESH_API_KEY", raising=False)
    # Where the daemon is found: nowhere yet (Tailscale not up), then at `daemon_url`.
    where = [_closed_url()]
    monkeypatch.setattr(settings, "find_default_base_url", lambda: where[0])
    monkeypatch.setattr(client, "find_default_base_url", lambda: where[0])
    async with Mesh(env_file=env) as mesh:
        assert mesh.base_url == where[0]
        where[0] = daemon_url
        assert await mesh.sessions() == []
        assert mesh.base_url == daemon_url


async def test_a_daemon_at_its_mesh_listen_is_not_looked_for_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, daemon_url: str
) -> None:
    env = tmp_path / ".env"
    closed = _closed_url()
    env.write_text(f"MESH_LISTEN={closed.removeprefix('http://')}\nMESH_API_KEY=k1\n")
    monkeypatch.delenv("MESH_LISTEN", raising=False)
    monkeypatch.delenv("MESH_API_KEY", raising=False)
    monkeypatch.setattr(client, "find_default_base_url", lambda: daemon_url)
    async with Mesh(env_file=env) as mesh:
        with pytest.raises(DaemonUnreachable):
            await mesh.sessions()
        assert mesh.base_url == closed
