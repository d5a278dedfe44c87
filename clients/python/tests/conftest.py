"""The two daemons the tests call, which `tests/integration/pyclient.rs`
starts (`cargo nextest run --locked pyclient`) and names in the environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from agentmesh import Mesh


@dataclass(frozen=True)
class Daemons:
    laptop_url: str
    mini_url: str
    laptop: str
    mini: str
    key: str


def _setting(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: these tests run from `cargo nextest run --locked pyclient`, which starts the daemons")
    return value


@pytest.fixture
def daemons() -> Daemons:
    return Daemons(
        laptop_url=_setting("AGENTMESH_TEST_LAPTOP_URL"),
        mini_url=_setting("AGENTMESH_TEST_MINI_URL"),
        laptop=_setting("AGENTMESH_TEST_LAPTOP_NODE"),
        mini=_setting("AGENTMESH_TEST_MINI_NODE"),
        key=_setting("AGENTMESH_TEST_KEY"),
    )


@pytest.fixture
async def laptop(daemons: Daemons) -> AsyncIterator[Mesh]:
    async with Mesh(base_url=daemons.laptop_url, api_key=daemons.key) as mesh:
        yield mesh
