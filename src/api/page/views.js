// Draws what the API says into the page's tables: text only, never HTML.
// Types: ./api-types.js, generated from the API description.

/** @typedef {import("./api-types.js").MeshNode} MeshNode */
/** @typedef {import("./api-types.js").MeshNodeStatus} MeshNodeStatus */
/** @typedef {import("./api-types.js").ObjectStatus} ObjectStatus */
/** @typedef {import("./api-types.js").EventRecord} EventRecord */
/** @typedef {import("./api-types.js").LogLine} LogLine */

const $ = (id) => document.getElementById(id);

/** How many of a capability's moves and of a Service's lines are shown. */
const LAST_MOVES = 3;
export const LAST_LINES = 5;

/**
 * Every node: the views of `/api/v1/mesh`, each with why it did not answer
 * `/api/v1/mesh/status` when it did not.
 * @param {MeshNode[]} views
 * @param {Map<string, MeshNodeStatus>} statuses by node name
 */
export function drawNodes(views, statuses) {
  const rows = views.map((node) => {
    const [state, css] = stateOf(node);
    const status = statuses.get(node.name);
    const errors = [
      node.lastError && `probe: ${node.lastError}`,
      status?.status.lastError && `snapshot rejected: ${status.status.lastError}`,
      status?.unanswered && `status: ${status.unanswered}`,
    ];
    return row([
      ["Node", node.name + (node.thisNode ? " (this node)" : "")],
      ["State", state, css],
      ["RTT", node.thisNode || !node.online || node.rttMs == null ? "–" : `${node.rttMs.toFixed(1)} ms`],
      ["Role", node.role],
      ["Revision", short(status?.status.revision ?? node.revision) ?? "–"],
      ["Source", sourceOf(node.source ?? status?.status.source)],
      ["Last error", errors.filter(Boolean).join("; ") || "–", errors.some(Boolean) ? "unreachable" : "muted"],
    ]);
  });
  $("nodes").replaceChildren(...rows);
}

/**
 * Online, asleep since, or unreachable since, as the prober last saw it; the
 * second item is the CSS class (and the topology's link colour).
 * @param {MeshNode} node
 */
export function stateOf(node) {
  if (node.asleepSince) return [`asleep since ${clock(node.asleepSince)}`, "asleep"];
  if (node.unreachableSince) return [`unreachable since ${clock(node.unreachableSince)}`, "unreachable"];
  if (node.knownDown || !node.online) return ["unreachable", "unreachable"];
  return ["online", "online"];
}

/** @param {import("./api-types.js").SourceStatus | null | undefined} source */
function sourceOf(source) {
  if (!source) return "–";
  const followed = source.type === "git" ? `git ${source.remote ?? ""}@${source.branch ?? ""}` : `folder ${source.path}`;
  const at = source.revision ? ` at ${short(source.revision)}` : " (nothing read yet)";
  const failed = source.lastFetchError ? `; fetch failed: ${source.lastFetchError}` : "";
  return followed + at + failed;
}

/** A commit's first 12 hex digits; other revisions as they are. */
function short(revision) {
  return revision && /^[0-9a-f]{40}$/.test(revision) ? revision.slice(0, 12) : revision;
}

/**
 * Each Capability of this node's status (this node decides where each is
 * served for the whole mesh): where, why, and its last moves, the
 * `PlacementChanged` events about it among those the stream brought.
 * @param {MeshNodeStatus | undefined} here
 * @param {EventRecord[]} events newest first
 */
export function drawCapabilities(here, events) {
  const rows = objectsOf(here, "Capability").map((object) => {
    const servedBy = object.details?.servedBy;
    const moves = events
      .filter((event) => event.reason === "PlacementChanged" && event.object === `Capability/${object.name}`)
      .slice(0, LAST_MOVES)
      .map((event) => `${clock(event.time)} ${event.message}`);
    return row([
      ["Capability", object.name],
      ["Served by", servedBy ?? "nowhere", servedBy ? "online" : "unreachable"],
      ["Reason", condition(object, "Ready")?.message ?? "–"],
      ["Last moves", moves.join("\n") || "none seen", moves.length ? "lines" : "muted"],
    ]);
  });
  $("capabilities").replaceChildren(...orNone(rows, "Capability"));
}

/**
 * Every node's Services: health, restarts, and the last lines of output.
 * @param {MeshNodeStatus[]} nodes
 * @param {Map<string, LogLine[]>} logs by `node/service`
 */
export function drawServices(nodes, logs) {
  const rows = [];
  for (const node of nodes) {
    for (const object of objectsOf(node, "Service")) {
      const details = object.details ?? {};
      const health = details.healthy === "false" ? ["unhealthy", "unreachable"] : object.ready ? ["ready", "online"] : [condition(object, "Ready")?.reason ?? "not ready", "asleep"];
      const read = logs.get(`${node.view.name}/${object.name}`);
      const lines = read ? read.map((line) => line.line).join("\n") || "no output yet" : "not read";
      rows.push(row([
        ["Service", object.name],
        ["Node", node.view.name],
        ["Health", health[0], health[1]],
        ["Restarts", details.restarts ?? "0"],
        ["Last exit", details.lastExit ?? "–"],
        ["Output", lines, read ? "lines" : "muted"],
      ]));
    }
  }
  $("services").replaceChildren(...orNone(rows, "Service"));
}

/**
 * Every node's SyncFolders: state and completion per peer
 * (`completion/<node>` details).
 * @param {MeshNodeStatus[]} nodes
 */
export function drawFolders(nodes) {
  const rows = [];
  for (const node of nodes) {
    for (const object of objectsOf(node, "SyncFolder")) {
      const details = object.details ?? {};
      const peers = Object.entries(details)
        .filter(([key]) => key.startsWith("completion/"))
        .map(([key, done]) => `${key.slice("completion/".length)} ${done}`);
      rows.push(row([
        ["Folder", object.name],
        ["Node", node.view.name],
        ["State", details.state ?? condition(object, "Ready")?.reason ?? "–", object.ready ? "online" : "asleep"],
        ["Peers", peers.join(", ") || "–"],
      ]));
    }
  }
  $("folders").replaceChildren(...orNone(rows, "SyncFolder"));
}

/**
 * Every node's Ollama model pulls (`model/<name>` details of its Capabilities).
 * @param {MeshNodeStatus[]} nodes
 */
export function drawPulls(nodes) {
  const rows = [];
  for (const node of nodes) {
    for (const object of objectsOf(node, "Capability")) {
      for (const [key, state] of Object.entries(object.details ?? {})) {
        if (!key.startsWith("model/")) continue;
        const css = state === "pulled" ? "online" : state.startsWith("pull failed") ? "unreachable" : "asleep";
        rows.push(row([
          ["Model", key.slice("model/".length)],
          ["Node", node.view.name],
          ["Capability", object.name],
          ["Progress", state, css],
        ]));
      }
    }
  }
  $("pulls").replaceChildren(...orNone(rows, "model pull", "none"));
}

/**
 * The latest events, newest first.
 * @param {EventRecord[]} events
 */
export function drawEvents(events) {
  const rows = events.map((event) => row([
    ["Time", clock(event.time)],
    ["Object", event.object || "node"],
    ["Reason", event.reason, event.type === "Warning" ? "unreachable" : ""],
    ["Message", event.message],
  ]));
  $("events").replaceChildren(...orNone(rows, "event", "none yet"));
}

/** @param {MeshNodeStatus | undefined} node @returns {ObjectStatus[]} */
function objectsOf(node, kind) {
  return (node?.status.objects ?? []).filter((object) => object.kind === kind);
}

/** @param {ObjectStatus} object */
function condition(object, type) {
  return (object.conditions ?? []).find((condition) => condition.type === type);
}

/** `rows`, or one row across the table saying there are none. */
function orNone(rows, what, words = "none declared") {
  if (rows.length) return rows;
  const none = row([[what, words, "muted"]]);
  /** @type {HTMLTableCellElement} */ (none.firstChild).colSpan = 9;
  return [none];
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
