// The status page: trades a key or a one-time ticket for a session cookie,
// then draws the mesh from the API and redraws it on every event of the
// stream. Plain ES module, no build step, no dependency.

const $ = (id) => document.getElementById(id);

/** How long after an event the page fetches again, so a burst is one fetch. */
const REDRAW_DELAY_MS = 150;
/** Probes change RTT without an event: the page also refreshes this often. */
const REFRESH_MS = 5000;
/** How long to wait before opening the event stream again after it closed. */
const RECONNECT_MS = 2000;

let stream = null;
let redrawTimer = null;

start();

async function start() {
  $("login").addEventListener("submit", onLogin);
  $("forget").addEventListener("click", forget);
  const secret = fromFragment();
  if (secret) {
    // The fragment never reaches the server; drop it from the address bar and history.
    history.replaceState(null, "", location.pathname + location.search);
    await openSession(secret);
  }
  await show();
}

/** `#key=…` or `#ticket=…` of the address, if any. */
function fromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("ticket")) return { ticket: params.get("ticket") };
  if (params.get("key")) return { key: params.get("key") };
  return null;
}

async function onLogin(event) {
  event.preventDefault();
  const input = $("key");
  const opened = await openSession({ key: input.value });
  input.value = "";
  if (opened) await show();
}

/** Trades `{key}` or `{ticket}` for the session cookie. */
async function openSession(secret) {
  const answer = await fetch("/ui/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(secret),
    credentials: "same-origin",
  });
  if (!answer.ok) {
    notice(await errorOf(answer, "the node refused the key"), true);
    return false;
  }
  notice("");
  return true;
}

async function forget() {
  await fetch("/ui/session", { method: "DELETE", credentials: "same-origin" });
  if (stream) stream.close();
  stream = null;
  $("mesh").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  notice("This browser forgot the session.");
}

/** Draws the mesh, or asks for the key when the API refuses this browser. */
async function show() {
  const drawn = await redraw();
  if (!drawn) return;
  $("login").hidden = true;
  $("forget").hidden = false;
  $("mesh").hidden = false;
  if (!stream) follow();
}

/** Fetches the mesh and every node's status; false when not let in. */
async function redraw() {
  const mesh = await api("/api/v1/mesh");
  if (mesh === null) {
    $("login").hidden = false;
    $("mesh").hidden = true;
    return false;
  }
  // This node decides where each capability is served for the whole mesh.
  const status = await api("/api/v1/status");
  drawNodes(mesh);
  if (status) drawCapabilities(status);
  return true;
}

async function api(path) {
  let answer;
  try {
    answer = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
  } catch (error) {
    notice(`cannot reach this node: ${error.message}`, true);
    return undefined;
  }
  if (answer.status === 401) return null;
  if (!answer.ok) {
    notice(await errorOf(answer, `${path} answered ${answer.status}`), true);
    return undefined;
  }
  return answer.json();
}

function drawNodes(mesh) {
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

function drawCapabilities(status) {
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

/** A table row of `[label, text, class]` cells; text only, never HTML. */
function row(cells) {
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

function clock(rfc3339) {
  const at = new Date(rfc3339);
  return Number.isNaN(at.getTime()) ? rfc3339 : at.toLocaleTimeString();
}

/** Follows the event stream: every event redraws the page shortly after. */
function follow() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/v1/events`);
  stream = socket;
  const refresh = setInterval(scheduleRedraw, REFRESH_MS);
  socket.addEventListener("message", (message) => {
    const item = JSON.parse(message.data);
    if (item.type === "live") live(true);
    else if (item.type === "event" || item.type === "lagged") scheduleRedraw();
  });
  socket.addEventListener("close", () => {
    clearInterval(refresh);
    live(false);
    if (stream !== socket) return;
    stream = null;
    setTimeout(show, RECONNECT_MS);
  });
}

function scheduleRedraw() {
  clearTimeout(redrawTimer);
  redrawTimer = setTimeout(redraw, REDRAW_DELAY_MS);
}

function live(on) {
  const badge = $("stream");
  badge.dataset.state = on ? "live" : "off";
  badge.textContent = on ? "live" : "not live";
}

function notice(text, isError = false) {
  const line = $("notice");
  line.textContent = text;
  line.className = isError ? "error" : "";
}

async function errorOf(answer, fallback) {
  try {
    const body = await answer.json();
    return body.message ?? fallback;
  } catch {
    return fallback;
  }
}
