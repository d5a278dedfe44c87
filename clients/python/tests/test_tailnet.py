"""How the client asks Tailscale for this node's tailnet IPv4: the choice of
way and the status parse as tables (on the Rust side's fixtures), the
LocalAPI read against a fake tailscaled on a unix socket, the command against
a fake `tailscale`."""

from __future__ import annotations

import json
import socketserver
import stat
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from agentmesh import tailnet
from agentmesh.tailnet import Way, choose, status_from_command, status_from_socket, tailnet_ipv4

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "tailscale"


@pytest.mark.parametrize("fixture", ["status.json", "cli-status.json", "status-no-peers.json"])
def test_the_tailnet_ip_is_read_from_tailscales_own_status(fixture: str) -> None:
    status = json.loads((FIXTURES / fixture).read_text(encoding="utf-8"))
    assert tailnet_ipv4(status) == "100.101.1.2"


RUNNING = "Running"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"BackendState": RUNNING, "TailscaleIPs": ["fd7a:115c:a1e0::1", "100.64.0.7"]}, "100.64.0.7"),
        ({"BackendState": RUNNING, "TailscaleIPs": None, "Self": {"TailscaleIPs": ["100.127.255.1"]}}, "100.127.255.1"),
        ({"BackendState": RUNNING, "TailscaleIPs": [], "Self": None}, None),
        ({"BackendState": "Stopped", "TailscaleIPs": ["100.64.0.7"]}, None),
        ({"BackendState": "NeedsLogin"}, None),
        ({"BackendState": RUNNING, "TailscaleIPs": ["100.128.0.1", "10.0.0.1", "not an ip", 7]}, None),
        ({"BackendState": RUNNING, "TailscaleIPs": ["fd7a:115c:a1e0::1"]}, None),
        # What tailscaled never writes reads as no address, not a crash.
        ({"BackendState": RUNNING, "TailscaleIPs": None, "Self": "x"}, None),
        ({"BackendState": RUNNING, "TailscaleIPs": "100.64.0.7"}, None),
        ({"BackendState": RUNNING, "TailscaleIPs": [1681915905]}, None),
        ({"BackendState": RUNNING, "TailscaleIPs": {"100.64.0.7": 1}}, None),
    ],
)
def test_only_a_running_nodes_cgnat_ipv4_counts(status: dict[str, Any], expected: str | None) -> None:
    assert tailnet_ipv4(status) == expected


SOCKET = Path("/run/ts.sock")
COMMAND = Path("/usr/bin/tailscale")


@pytest.mark.parametrize(
    ("macos", "socket", "command", "expected"),
    [
        (False, SOCKET, COMMAND, Way("socket", SOCKET)),
        (False, None, COMMAND, Way("command", COMMAND)),
        (True, SOCKET, COMMAND, Way("command", COMMAND)),
        (True, SOCKET, None, Way("socket", SOCKET)),
        (False, None, None, None),
        (True, None, None, None),
    ],
)
def test_the_way_to_ask_is_tailscales_own_order(
    macos: bool, socket: Path | None, command: Path | None, expected: Way | None
) -> None:
    assert choose(macos, socket, command) == expected


class _FakeLocalApi(BaseHTTPRequestHandler):
    """tailscaled's LocalAPI as far as the client uses it: 403 for another
    Host or an Origin, the status for `/localapi/v0/status?peers=false`."""

    answer: tuple[int, bytes] = (200, b"{}")
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        if self.headers.get("Host") != "local-tailscaled.sock" or "Origin" in self.headers:
            code, body = 403, b"invalid localapi request\n"
        elif self.path != "/localapi/v0/status?peers=false":
            code, body = 404, b"not found\n"
        else:
            code, body = self.answer
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_localapi(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "tailscaled.sock"
    _FakeLocalApi.seen = []
    server = socketserver.UnixStreamServer(str(path), _FakeLocalApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_status_is_read_from_tailscaleds_socket(fake_localapi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = (FIXTURES / "status.json").read_bytes()
    monkeypatch.setattr(_FakeLocalApi, "answer", (200, body))
    status = status_from_socket(fake_localapi)
    assert status == json.loads(body)
    assert _FakeLocalApi.seen == ["/localapi/v0/status?peers=false"]
    monkeypatch.setattr(tailnet, "LINUX_SOCKETS", ("/nonexistent/tailscaled.sock", str(fake_localapi)))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("PATH", "")
    assert tailnet.local_tailnet_ipv4() == "100.101.1.2"


@pytest.mark.parametrize(("code", "body"), [(403, b"denied\n"), (200, b"not json"), (200, b"[1]")])
def test_a_status_that_is_refused_or_does_not_read_is_none(
    fake_localapi: Path, monkeypatch: pytest.MonkeyPatch, code: int, body: bytes
) -> None:
    monkeypatch.setattr(_FakeLocalApi, "answer", (code, body))
    assert status_from_socket(fake_localapi) is None


def test_a_missing_socket_is_none(tmp_path: Path) -> None:
    assert status_from_socket(tmp_path / "absent.sock") is None


def _script(path: Path, text: str) -> Path:
    path.write_text("#!/bin/sh\n" + text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_status_is_read_from_the_tailscale_command(tmp_path: Path) -> None:
    fixture = FIXTURES / "cli-status.json"
    args = tmp_path / "args"
    program = _script(tmp_path / "tailscale", f'echo "$@" > "{args}"\ncat "{fixture}"\n')
    status = status_from_command(program)
    assert status is not None and tailnet_ipv4(status) == "100.101.1.2"
    assert args.read_text(encoding="utf-8") == "status --json --peers=false\n"


def test_a_command_that_fails_or_hangs_is_none(tmp_path: Path) -> None:
    assert status_from_command(_script(tmp_path / "failing", "echo down >&2\nexit 1\n")) is None
    assert status_from_command(_script(tmp_path / "hanging", "exec sleep 10\n"), timeout=0.2) is None
    assert status_from_command(tmp_path / "absent") is None
