"""Continue a conversation on another node, from the agent itself.

The agent calls its own node's mesh API: it hands the conversation over
(POST /api/v1/handoff) and follows the handoff until it ends
(GET /api/v1/handoff/{handoff}). Standard library only.

    MESH_API=http://127.0.0.1:8000 MESH_API_KEY=... \
        python3 handoff_from_agent.py CONVERSATION [TARGET]

Without TARGET the HandoffPolicy's defaultTarget is used. Exit code 0 when
TARGET owns the conversation, 1 when the handoff was refused or failed (the
conversation stays with this node, as it was).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

API = os.environ.get("MESH_API", "http://127.0.0.1:8000").rstrip("/")
KEY = os.environ.get("MESH_API_KEY", "")


def call(method, path, body=None):
    """One call to the mesh API: the JSON answer, or HTTPError."""
    request = urllib.request.Request(
        API + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def hand_over(conversation, target=None):
    session = call("GET", f"/api/v1/sessions/{conversation}")
    if not session["writable"]:
        print(f"{conversation} is not this node's to hand over (owner: {session['owner']})")
        return False
    request = {"id": conversation}
    if target:
        request["to"] = target
    try:
        progress = call("POST", "/api/v1/handoff", request)
    except urllib.error.HTTPError as refused:
        print(f"refused: {json.load(refused)['message']}")
        return False
    shown = 0
    while True:
        for line in progress["lines"][shown:]:
            print(f"  {line}")
        shown = len(progress["lines"])
        if progress["done"]:
            break
        time.sleep(0.5)
        progress = call("GET", f"/api/v1/handoff/{progress['handoff']}")
    if progress["succeeded"]:
        print(f"{progress['owner']} now owns {conversation} at epoch {progress['epoch']}")
    else:
        print(f"failed at the {progress['failedStep']} step; {progress['owner']} keeps {conversation}")
    return progress["succeeded"]


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if hand_over(*sys.argv[1:]) else 1)
