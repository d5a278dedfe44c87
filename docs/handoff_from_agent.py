"""Continue a conversation on another node, from the agent itself.

The agent asks its own node's daemon, with the Python client
(`pip install ./clients/python`), whether the conversation is its to hand
over (`can_write`), hands it over and follows the handoff until it ends.

    python3 handoff_from_agent.py CONVERSATION [TARGET]

The daemon is found as `meshctl` finds it: `MESH_LISTEN` and `MESH_API_KEY`
from the environment, else the nearest `.env`. Without TARGET the
HandoffPolicy's defaultTarget is used. Exit code 0 when TARGET owns the
conversation, 1 when the handoff was refused or failed (the conversation
stays with this node, as it was).
"""

import asyncio
import sys

from agentmesh import Mesh, MeshError


async def hand_over(conversation, target=None):
    async with Mesh() as mesh:
        if not await mesh.can_write(conversation):
            session = await mesh.session(conversation)
            print(f"{conversation} is not this node's to hand over (owner: {session.owner})")
            return False
        try:
            progress = await mesh.handoff(conversation, to=target, on_progress=lambda line: print(f"  {line}"))
        except MeshError as refused:
            print(f"refused: {refused.message}")
            return False
    if progress.succeeded:
        print(f"{progress.owner} now owns {conversation} at epoch {progress.epoch}")
    else:
        print(f"failed at the {progress.failed_step} step; {progress.owner} keeps {conversation}")
    return progress.succeeded


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if asyncio.run(hand_over(*sys.argv[1:])) else 1)
