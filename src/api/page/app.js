// The status page's entry: opens the session, draws the mesh from the API
// and redraws it on every event of the stream. Plain ES modules, no build
// step, no dependency.

import { api, closeSession, notice, openSession, takeFragment } from "./session.js";
import { drawTopology } from "./topology.js";
import { LAST_LINES, drawCapabilities, drawEvents, drawFolders, drawNodes, drawPulls, drawServices } from "./views.js";
import { drawConversations } from "./conversations.js";
import { drawPaused, handOver, learnAuthority, setupActions } from "./actions.js";

/** @typedef {import("./api-types.js").MeshNode} MeshNode */
/** @typedef {import("./api-types.js").MeshStatus} MeshStatus */
/** @typedef {import("./api-types.js").StreamMessage} StreamMessage */

const $ = (id) => document.getElementById(id);

/** How long after an event the page fetches again, so a burst is one fetch. */
const REDRAW_DELAY_MS = 150;
/** Probes change RTT without an event: the page also refreshes this often. */
const REFRESH_MS = 5000;
/** How long to wait before opening the event stream again after it closed. */
const RECONNECT_MS = 2000;

/** How many of the stream's events the page keeps (the stream sends 50 recent ones first). */
const EVENTS_KEPT = 50;

let stream = null;
let redrawTimer = null;
// What the page last had: this node's view of every node, every node's
// status, the stream's events (newest first), every Service's last lines.
/** @type {MeshNode[]} */
let views = [];
/** @type {MeshStatus} */
let meshStatus = { nodes: [] };
/** @type {import("./api-types.js").EventRecord[]} */
let events = [];
/** By `node/service`. @type {Map<string, import("./api-types.js").LogLine[]>} */
const logs = new Map();
/** The mesh's node names, as last drawn: the targets of a handoff. */
let nodeNames = [];

start();

async function start() {
  $("login").addEventListener("submit", onLogin);
  $("forget").addEventListener("click", forget);
  setupActions(scheduleRedraw);
  const secret = takeFragment();
  if (secret) await openSession(secret);
  await show();
}

async function onLogin(event) {
  event.preventDefault();
  const input = $("key");
  const opened = await openSession({ key: input.value });
  input.value = "";
  if (opened) await show();
}

async function forget() {
  await closeSession();
  if (stream) stream.close();
  stream = null;
  $("mesh").hidden = true;
  $("conversations").hidden = true;
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
  $("conversations").hidden = false;
  await learnAuthority();
  if (!stream) follow();
}

/**
 * Fetches this node's view of the mesh, drawn at once, and every node's
 * status, which may wait up to 1.5 s on a peer that does not answer; false
 * when not let in.
 */
async function redraw() {
  const gathered = api("/api/v1/mesh/status");
  const sessions = api("/api/v1/sessions");
  const mesh = await api("/api/v1/mesh");
  if (mesh === null) {
    $("login").hidden = false;
    $("mesh").hidden = true;
    return false;
  }
  if (mesh) {
    views = mesh;
    nodeNames = mesh.map((node) => node.name);
    drawMesh();
  }
  const conversations = await sessions;
  if (conversations) await drawConversations(conversations, (session) => handOver(session, nodeNames));
  const status = await gathered;
  if (status) {
    meshStatus = status;
    await readLogs();
    drawMesh();
    const here = status.nodes.find((node) => node.view.thisNode);
    if (here?.status) drawPaused(here.status.paused === true);
  }
  return true;
}

/**
 * The last lines of every node's Services: a peer's through this node
 * (the page may call only its own), asked only of a node that just answered.
 */
async function readLogs() {
  const asks = [];
  for (const node of meshStatus.nodes) {
    if (node.unanswered) continue;
    for (const { kind, name } of node.status.objects ?? []) {
      if (kind !== "Service") continue;
      const path = `/api/v1/mesh/nodes/${encodeURIComponent(node.view.name)}/objects/Service/${encodeURIComponent(name)}`;
      asks.push(api(path, { quiet: true }).then((described) => {
        if (described) logs.set(`${node.view.name}/${name}`, described.logs.slice(-LAST_LINES));
      }));
    }
  }
  await Promise.all(asks);
}

function drawMesh() {
  const byName = new Map(meshStatus.nodes.map((node) => [node.view.name, node]));
  drawTopology(views);
  drawNodes(views, byName);
  drawCapabilities(meshStatus.nodes.find((node) => node.view.thisNode), events);
  drawServices(meshStatus.nodes, logs);
  drawFolders(meshStatus.nodes);
  drawPulls(meshStatus.nodes);
  drawEvents(events);
}

/** An event joins the list at once; a Service's line its output at once; both without a fetch. */
function take(/** @type {StreamMessage} */ item) {
  if (item.type === "event") {
    events = [{ ...item, type: item.eventType }, ...events].slice(0, EVENTS_KEPT);
    drawEvents(events);
    drawCapabilities(meshStatus.nodes.find((node) => node.view.thisNode), events);
  } else if (item.type === "log") {
    // The stream is this node's: its Services' lines.
    const here = views.find((node) => node.thisNode)?.name;
    const key = `${here}/${item.service}`;
    const lines = [...(logs.get(key) ?? []), { stream: item.stream, line: item.line }];
    logs.set(key, lines.slice(-LAST_LINES));
    drawServices(meshStatus.nodes, logs);
  }
}

/** Follows the event stream: every event redraws the page shortly after. */
function follow() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/v1/events`);
  stream = socket;
  // The stream starts with its recent events again.
  events = [];
  const refresh = setInterval(scheduleRedraw, REFRESH_MS);
  socket.addEventListener("message", (message) => {
    const item = JSON.parse(message.data);
    take(item);
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

/** One redraw at most REDRAW_DELAY_MS after the first event of a burst, so a steady stream still redraws. */
function scheduleRedraw() {
  if (redrawTimer) return;
  redrawTimer = setTimeout(() => {
    redrawTimer = null;
    redraw();
  }, REDRAW_DELAY_MS);
}

function live(on) {
  const badge = $("stream");
  badge.dataset.state = on ? "live" : "off";
  badge.textContent = on ? "live" : "not live";
}
