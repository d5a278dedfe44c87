"""This node's tailnet IPv4, asked of Tailscale as `meshctl` asks it: its
LocalAPI `status` over tailscaled's unix socket, or `tailscale status --json`
where the command is the way in (the macOS apps serve their LocalAPI on a
token-guarded port that their bundled command finds). Only this machine is
asked: a unix socket or a local process, never the network."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

# tailscaled refuses (403) a LocalAPI request with any other Host; with a unix
# socket transport no name is looked up.
LOCALAPI_HOST = "local-tailscaled.sock"

# tailscaled's sockets, in the order tried: Linux's default and the path the
# shipped systemd unit passes; the open-source daemon's on macOS.
LINUX_SOCKETS = ("/var/run/tailscale/tailscaled.sock", "/run/tailscale/tailscaled.sock")
MACOS_SOCKETS = ("/var/run/tailscaled.socket",)

# The CLI inside the macOS app, for when `tailscale` is not in PATH.
APP_COMMAND = "/Applications/Tailscale.app/Contents/MacOS/Tailscale"

# As `meshctl` waits for Tailscale (3 s a call), so both find the same
# address from a busy tailscaled. Waited for only when `MESH_LISTEN` is unset.
SOCKET_TIMEOUT = 3.0
COMMAND_TIMEOUT = 3.0

# Tailscale's addresses are in 100.64.0.0/10.
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


@dataclass(frozen=True)
class Way:
    """How to ask Tailscale: `socket` (a LocalAPI socket) or `command` (the
    `tailscale` program), at `path`."""

    kind: Literal["socket", "command"]
    path: Path


def choose(macos: bool, socket: Path | None, command: Path | None) -> Way | None:
    """The way to ask, in Tailscale's own order: on Linux the socket, else the
    command; on macOS the command, which tries the apps' LocalAPI before the
    socket as Tailscale's client does, else the socket."""
    ways = [Way("socket", socket) if socket else None, Way("command", command) if command else None]
    if macos:
        ways.reverse()
    return next((way for way in ways if way is not None), None)


def tailnet_ipv4(status: Mapping[str, Any]) -> str | None:
    """This node's tailnet IPv4 in a LocalAPI status (ipnstate.Status): the
    first 100.64.0.0/10 address of `TailscaleIPs` (else `Self`'s), and only
    while the backend is `Running`."""
    if status.get("BackendState") != "Running":
        return None
    own = status.get("Self")
    ips = status.get("TailscaleIPs") or (own.get("TailscaleIPs") if isinstance(own, dict) else None)
    if not isinstance(ips, list):
        return None
    for text in ips:
        if not isinstance(text, str):
            continue
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
            return str(ip)
    return None


def status_from_socket(socket: Path, timeout: float = SOCKET_TIMEOUT) -> dict[str, Any] | None:
    """`GET /localapi/v0/status?peers=false` on tailscaled's socket; None when
    it does not answer 200 with a JSON object within `timeout` in all."""
    transport = httpx.HTTPTransport(uds=str(socket))
    url = f"http://{LOCALAPI_HOST}/localapi/v0/status"
    deadline = time.monotonic() + timeout
    try:
        with httpx.Client(transport=transport, timeout=timeout, trust_env=False) as client:
            with client.stream("GET", url, params={"peers": "false"}) as answer:
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if time.monotonic() > deadline:
                        return None
    except httpx.HTTPError:
        return None
    return _object(bytes(body)) if answer.status_code == 200 else None


def status_from_command(program: Path, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any] | None:
    """`tailscale status --json --peers=false`; None when it fails or takes
    longer than `timeout` (the child is killed then)."""
    try:
        done = subprocess.run(
            [str(program), "status", "--json", "--peers=false"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return _object(done.stdout) if done.returncode == 0 else None


def local_tailnet_ipv4() -> str | None:
    """This node's tailnet IPv4 when Tailscale is up; None when it is down,
    missing or does not answer in time."""
    macos = sys.platform == "darwin"
    socket = next((Path(p) for p in (MACOS_SOCKETS if macos else LINUX_SOCKETS) if Path(p).exists()), None)
    way = choose(macos, socket, find_command())
    if way is None:
        return None
    status = status_from_socket(way.path) if way.kind == "socket" else status_from_command(way.path)
    return tailnet_ipv4(status) if status is not None else None


def find_command() -> Path | None:
    """`tailscale` in PATH (never the current folder, which an empty entry
    would name), else the macOS app's CLI."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder:
            continue
        candidate = Path(folder) / "tailscale"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    app = Path(APP_COMMAND)
    return app if app.is_file() and os.access(app, os.X_OK) else None


def _object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
