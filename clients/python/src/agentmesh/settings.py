"""Where this node's daemon answers and with which key, found as `meshctl`
finds them: `MESH_LISTEN` and `MESH_API_KEY` from the environment, else from
the nearest `.env` (the current folder or its nearest parent holding one,
else the node folder the user's context file names); a listen address of
0.0.0.0 or :: is dialled on loopback; no `MESH_LISTEN` means
127.0.0.1:8000. Pure functions over their inputs, and `locate()` which reads
the process environment and the files."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_FILE = ".env"
LISTEN = "MESH_LISTEN"
API_KEY = "MESH_API_KEY"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class DaemonSettings:
    """Where to call the daemon, with which key, and the `.env` they came
    from (None when none was found), for messages."""

    base_url: str
    api_key: str | None
    env_file: Path | None


class SettingsError(ValueError):
    """A setting that does not read, naming it and where it came from."""


def locate(env_file: Path | None = None) -> DaemonSettings:
    """The daemon's settings for this process: `env_file` when given, else
    the search from the current folder; the process environment wins."""
    if env_file is None:
        context = context_file_in(sys.platform == "darwin", _home(), os.environ.get("XDG_CONFIG_HOME"))
        env_file = find_env_file(Path.cwd(), read_context(context), lambda folder: (folder / ENV_FILE).is_file())
    from_file = parse_env(env_file.read_text(encoding="utf-8")) if env_file is not None else {}
    return settings_from(os.environ, from_file, env_file)


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


def settings_from(environ: Mapping[str, str], from_file: Mapping[str, str], env_file: Path | None) -> DaemonSettings:
    """The settings the environment gives, else the `.env`'s; a blank value is unset."""

    def value(name: str) -> tuple[str, str] | None:
        # As `meshctl`: the environment's value replaces the file's, even blank.
        source, where = (environ, "the environment") if name in environ else (from_file, str(env_file))
        text = source.get(name, "").strip()
        return (text, where) if text else None

    listen = value(LISTEN)
    base_url = f"http://127.0.0.1:{DEFAULT_PORT}" if listen is None else base_url_for(*listen)
    key = value(API_KEY)
    return DaemonSettings(base_url=base_url, api_key=key[0] if key else None, env_file=env_file)


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
