// The status page's entry: opens the session, draws the mesh from the API
// and redraws it on every event of the stream. Plain ES modules, no build
// step, no dependency.

import { api, closeSession, notice, openSession, takeFragment } from "./session.js";
import { drawCapabilities, drawNodes } from "./views.js";
import { drawConversations } from "./conversations.js";
import { drawPaused, handOver, learnAuthority, setupActions } from "./actions.js";

const $ = (id) => document.getElementById(id);

/** How long after an event the page fetches again, so a burst is one fetch. */
const REDRAW_DELAY_MS = 150;
/** Probes change RTT without an event: the page also refreshes this often. */
const REFRESH_MS = 5000;
/** How long to wait before opening the event stream again after it closed. */
const RECONNECT_MS = 2000;

let stream = null;
let redrawTimer = null;
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

/** Fetches the mesh and this node's status; false when not let in. */
async function redraw() {
  const mesh = await api("/api/v1/mesh");
  if (mesh === null) {
    $("login").hidden = false;
    $("mesh").hidden = true;
    return false;
  }
  // This node decides where each capability is served for the whole mesh.
  const status = await api("/api/v1/status");
  if (mesh) drawNodes(mesh);
  if (mesh) nodeNames = mesh.map((node) => node.name);
  if (status) drawCapabilities(status);
  if (status) drawPaused(status.paused === true);
  const sessions = await api("/api/v1/sessions");
  if (sessions) await drawConversations(sessions, (session) => handOver(session, nodeNames));
  return true;
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
