// Draws what the API says into the page's tables: text only, never HTML.

const $ = (id) => document.getElementById(id);

/** Every node of `/api/v1/mesh`, this one first. */
export function drawNodes(mesh) {
  const rows = mesh.map((node) => {
    const [state, css] = stateOf(node);
    return row([
      ["Node", node.name + (node.thisNode ? " (this node)" : "")],
      ["State", state, css],
      ["RTT", node.rttMs == null ? "–" : `${node.rttMs} ms`],
      ["Role", node.role],
      ["Revision", node.revision ?? "–"],
    ]);
  });
  $("nodes").replaceChildren(...rows);
}

/** Online, asleep since, or unreachable since, as the prober last saw it. */
function stateOf(node) {
  if (node.asleepSince) return [`asleep since ${clock(node.asleepSince)}`, "asleep"];
  if (node.unreachableSince) return [`unreachable since ${clock(node.unreachableSince)}`, "unreachable"];
  if (node.knownDown || !node.online) return ["unreachable", "unreachable"];
  return ["online", "online"];
}

/** Each Capability of this node's `/api/v1/status`, where it is served and why. */
export function drawCapabilities(status) {
  const rows = [];
  for (const object of status.objects ?? []) {
    if (object.kind !== "Capability") continue;
    const ready = (object.conditions ?? []).find((condition) => condition.type === "Ready");
    const servedBy = object.details?.servedBy;
    rows.push(row([
      ["Capability", object.name],
      ["Served by", servedBy ?? "nowhere", servedBy ? "online" : "unreachable"],
      ["Reason", ready?.message ?? "–"],
    ]));
  }
  if (rows.length === 0) rows.push(row([["Capability", "none declared", "muted"]]));
  $("capabilities").replaceChildren(...rows);
}

/** A table row of `[label, text, class]` cells; the label heads the cell at a phone's width. */
export function row(cells) {
  const tr = document.createElement("tr");
  for (const [label, text, css] of cells) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.textContent = text;
    if (css) td.className = css;
    tr.append(td);
  }
  return tr;
}

/** An RFC 3339 time as the browser's local clock time. */
export function clock(rfc3339) {
  const at = new Date(rfc3339);
  return Number.isNaN(at.getTime()) ? rfc3339 : at.toLocaleTimeString();
}
