"""Where this node's daemon answers and with which key, found as `meshctl`
finds them: `MESH_LISTEN` and `MESH_API_KEY` from the environment, else from
the nearest `.env` (the current folder or its nearest parent holding one,
else the node folder the user's context file names); a listen address of
0.0.0.0 or :: is dialled on loopback; no `MESH_LISTEN` means where a daemon
without it listens: this node's tailnet IP when Tailscale is up and a
connection there is taken within half a second, else 127.0.0.1:8000. Pure
functions over their inputs, and `locate()`/`locate_key()` which read the
process environment, the files and Tailscale."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .tailnet import local_tailnet_ipv4

ENV_FILE = ".env"
LISTEN = "MESH_LISTEN"
API_KEY = "MESH_API_KEY"
DEFAULT_PORT = 8000
LOOPBACK_URL = f"http://127.0.0.1:{DEFAULT_PORT}"

# This node's own tailnet IP answers at once or not at all (as `meshctl`).
TAILNET_CONNECT_TIMEOUT = 0.5


@dataclass(frozen=True)
class DaemonSettings:
    """Where to call the daemon, with which key, and the `.env` they came
    from (None when none was found), for messages."""

    base_url: str
    api_key: str | None
    env_file: Path | None
    # No `MESH_LISTEN`: `base_url` is where the daemon was found, which may
    # change (Tailscale came up after this looked), so it may be looked for again.
    defaulted: bool = False


class SettingsError(ValueError):
    """A setting that does not read, naming it and where it came from."""


def locate(env_file: Path | None = None) -> DaemonSettings:
    """The daemon's settings for this process: `env_file` when given, else
    the search from the current folder; the process environment wins."""
    env_file, from_file = _read_env(env_file)
    return settings_from(os.environ, from_file, env_file, find_default_base_url)


def locate_key(env_file: Path | None = None) -> str | None:
    """Only the key, found as `locate()` finds it, for a caller that names
    the URL: `MESH_LISTEN` is not read, so a bad one does not stand in the way."""
    _, from_file = _read_env(env_file)
    return api_key_from(os.environ, from_file)


def _read_env(env_file: Path | None) -> tuple[Path | None, dict[str, str]]:
    if env_file is None:
        context = context_file_in(sys.platform == "darwin", _home(), os.environ.get("XDG_CONFIG_HOME"))
        env_file = find_env_file(Path.cwd(), read_context(context), lambda folder: (folder / ENV_FILE).is_file())
    from_file = parse_env(env_file.read_text(encoding="utf-8")) if env_file is not None else {}
    return env_file, from_file


def find_env_file(start: Path, context_folder: Path | None, has_env: Callable[[Path], bool]) -> Path | None:
    """`start` or its nearest parent holding a `.env`, else the folder the
    context file names when it holds one."""
    for folder in (start, *start.parents):
        if has_env(folder):
            return folder / ENV_FILE
    if context_folder is not None and has_env(context_folder):
        return context_folder / ENV_FILE
    return None


def context_file_in(macos: bool, home: Path | None, xdg_config_home: str | None) -> Path | None:
    """`~/Library/Application Support/agentmesh/context` on macOS;
    `$XDG_CONFIG_HOME/agentmesh/context` elsewhere, or `~/.config/…` when
    that is unset, empty or relative."""
    if macos:
        if home is None:
            return None
        base = home / "Library/Application Support"
    elif xdg_config_home and Path(xdg_config_home).is_absolute():
        base = Path(xdg_config_home)
    elif home is not None:
        base = home / ".config"
    else:
        return None
    return base / "agentmesh" / "context"


def read_context(path: Path | None) -> Path | None:
    """The node folder the context file names: its first non-blank line."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return next((Path(line.strip()) for line in text.splitlines() if line.strip()), None)


def parse_env(text: str) -> dict[str, str]:
    """The settings of a `.env`: `NAME=value` lines, `export ` allowed,
    blanks around `=` ignored, values in single quotes as written, in double
    quotes with `\\n`, `\\"` and `\\\\` escapes, unquoted ones up to a ` #`
    comment. Lines that are not settings are skipped (`meshctl` reports them)."""
    settings: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not name:
            continue
        settings[name] = _value(value.strip())
    return settings


def _value(raw: str) -> str:
    if raw.startswith("'"):
        end = raw.find("'", 1)
        return raw[1:end] if end > 0 else raw[1:]
    if raw.startswith('"'):
        out: list[str] = []
        escapes = {"n": "\n", '"': '"', "\\": "\\", "t": "\t"}
        index = 1
        while index < len(raw) and raw[index] != '"':
            if raw[index] == "\\" and index + 1 < len(raw):
                index += 1
                out.append(escapes.get(raw[index], "\\" + raw[index]))
            else:
                out.append(raw[index])
            index += 1
        return "".join(out)
    comment = raw.find(" #")
    return (raw[:comment] if comment >= 0 else raw).strip()


def settings_from(
    environ: Mapping[str, str], from_file: Mapping[str, str], env_file: Path | None, default_url: Callable[[], str]
) -> DaemonSettings:
    """The settings the environment gives, else the `.env`'s; a blank value is
    unset. `default_url` is asked only when `MESH_LISTEN` is unset."""
    listen = _setting(environ, from_file, env_file, LISTEN)
    base_url = default_url() if listen is None else base_url_for(*listen)
    api_key = api_key_from(environ, from_file)
    return DaemonSettings(base_url=base_url, api_key=api_key, env_file=env_file, defaulted=listen is None)


def api_key_from(environ: Mapping[str, str], from_file: Mapping[str, str]) -> str | None:
    """`MESH_API_KEY` from the environment, else the `.env`; None when blank."""
    key = _setting(environ, from_file, None, API_KEY)
    return key[0] if key else None


def _setting(
    environ: Mapping[str, str], from_file: Mapping[str, str], env_file: Path | None, name: str
) -> tuple[str, str] | None:
    # As `meshctl`: the environment's value replaces the file's, even blank.
    source, where = (environ, "the environment") if name in environ else (from_file, str(env_file))
    text = source.get(name, "").strip()
    return (text, where) if text else None


def default_base_url(tailnet_ip: str | None, answers: Callable[[str, int], bool]) -> str:
    """Where a daemon without `MESH_LISTEN` is called, as `meshctl` calls it:
    at this node's tailnet IP (where such a daemon binds when Tailscale is
    up) when it takes a connection there, else on loopback, as when the
    daemon started before Tailscale came up. `answers` is not asked without
    a tailnet IP."""
    if tailnet_ip is not None and answers(tailnet_ip, DEFAULT_PORT):
        return f"http://{tailnet_ip}:{DEFAULT_PORT}"
    return LOOPBACK_URL


def find_default_base_url() -> str:
    """`default_base_url` for this node: Tailscale's answer and a real connection check."""
    return default_base_url(local_tailnet_ipv4(), takes_connections)


def takes_connections(host: str, port: int) -> bool:
    """Whether `host:port` takes a TCP connection within half a second."""
    try:
        with socket.create_connection((host, port), timeout=TAILNET_CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def base_url_for(listen: str, where: str = "MESH_LISTEN") -> str:
    """The URL a local client calls for the daemon's listen address
    (`host:port`, `[v6]:port`): an unspecified address is dialled on loopback."""
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or not host or int(port) > 65535:
        raise SettingsError(f'{LISTEN} "{listen}" from {where} is not an address:port such as 127.0.0.1:8000')
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare == "0.0.0.0":
        host = "127.0.0.1"
    elif bare in ("::", "0:0:0:0:0:0:0:0"):
        host = "[::1]"
    return f"http://{host}:{int(port)}"


def _home() -> Path | None:
    home = os.environ.get("HOME")
    return Path(home) if home else None
