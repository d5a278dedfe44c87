"""How `Mesh()` finds the daemon, as `meshctl` does: tables over the pure rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.settings import (
    SettingsError,
    base_url_for,
    context_file_in,
    find_env_file,
    parse_env,
    settings_from,
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
        ({}, {}, "http://127.0.0.1:8000", None),
        ({}, {"MESH_LISTEN": "100.64.0.2:8000", "MESH_API_KEY": "f"}, "http://100.64.0.2:8000", "f"),
        ({"MESH_LISTEN": "127.0.0.2:9000"}, {"MESH_LISTEN": "100.64.0.2:8000"}, "http://127.0.0.2:9000", None),
        ({"MESH_API_KEY": "e"}, {"MESH_API_KEY": "f"}, "http://127.0.0.1:8000", "e"),
        ({"MESH_API_KEY": "  "}, {"MESH_API_KEY": "f"}, "http://127.0.0.1:8000", None),
        ({"MESH_LISTEN": " "}, {"MESH_LISTEN": "100.64.0.2:8000"}, "http://127.0.0.1:8000", None),
        ({"MESH_LISTEN": "0.0.0.0:8000"}, {}, "http://127.0.0.1:8000", None),
        ({"MESH_LISTEN": "[::]:8001"}, {}, "http://[::1]:8001", None),
        ({"MESH_LISTEN": "[fd7a::2]:8002"}, {}, "http://[fd7a::2]:8002", None),
    ],
)
def test_the_environment_wins_over_the_env_file_and_unspecified_addresses_are_dialled_on_loopback(
    environ: dict[str, str], from_file: dict[str, str], url: str, key: str | None
) -> None:
    found = settings_from(environ, from_file, Path("/n/.env"))
    assert (found.base_url, found.api_key) == (url, key)


@pytest.mark.parametrize("listen", ["8000", "127.0.0.1", "127.0.0.1:port", ":8000", "127.0.0.1:70000"])
def test_a_listen_address_that_does_not_read_names_the_setting_and_where_it_came_from(listen: str) -> None:
    with pytest.raises(SettingsError, match=f'MESH_LISTEN "{listen}" from /n/.env is not an address:port'):
        base_url_for(listen, "/n/.env")
