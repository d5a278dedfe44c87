// The page's actions on this node: pause and resume its reconciles,
// reconcile now, and hand a conversation to another node. Each asks for a
// confirmation in the page's own dialog, and for the key when this browser's
// session does not carry it (it was let in by its Tailscale identity): the
// node refuses an action without it (403 `key_required`) in any case.

import { api, errorOf, notice, openSession } from "./session.js";
import { showProgress } from "./conversations.js";

const $ = (id) => document.getElementById(id);

/** How often a handoff's progress is asked for while it runs. */
const PROGRESS_MS = 300;
/** How long an intervention waits for the node's answer on the stream. */
const ANSWER_MS = 5000;

let mayAct = false;
let redraw = () => {};

/** Wires the buttons; `then` redraws the page after an action. */
export function setupActions(then) {
  redraw = then;
  $("pause").addEventListener("click", () => intervention("pause", "Pause reconciles on this node? Changes keep queueing until you resume."));
  $("resume").addEventListener("click", () => intervention("resume", "Resume reconciles on this node, the queued ones first?"));
  $("reconcile").addEventListener("click", () => intervention("reconcile", "Reconcile every object on this node now?"));
}

/** Learns whether this browser's session may act, so the dialog asks for the key only when it must. */
export async function learnAuthority() {
  const authority = await api("/ui/authority");
  mayAct = authority?.mayAct === true;
}

/** This node's `paused` (NodeStatus): the state line and which button applies. */
export function drawPaused(paused) {
  const state = $("paused");
  state.textContent = paused ? "paused" : "running";
  state.className = paused ? "asleep" : "online";
  $("pause").disabled = paused;
  $("resume").disabled = !paused;
}

/** Asks to hand `session` to one of `nodes` (names), then follows the handoff until it ends. */
export async function handOver(session, nodes) {
  const targets = nodes.filter((node) => node !== session.owner);
  const answer = await confirmAction(`Hand conversation ${session.id} (owned by ${session.owner ?? "no node"}) to:`, targets);
  if (!answer) return;
  const started = await post("/api/v1/handoff", { id: session.id, to: answer.node });
  if (!started.ok) {
    notice(`the handoff of ${session.id} did not start: ${started.error}`, true);
    return;
  }
  notice(`handing ${session.id} to ${answer.node}`);
  let progress = started.body;
  showProgress(session.id, progress);
  while (!progress.done) {
    await new Promise((resolve) => setTimeout(resolve, PROGRESS_MS));
    const next = await api(`/api/v1/handoff/${encodeURIComponent(progress.handoff)}`);
    if (!next) return;
    progress = next;
    showProgress(session.id, progress);
  }
  notice(progress.succeeded ? `${progress.owner} now owns ${session.id} at epoch ${progress.epoch}` : `the handoff of ${session.id} failed: ${progress.message}`, !progress.succeeded);
  redraw();
}

/** Confirms `action`, then sends it as an intervention on the event stream and shows the node's answer. */
async function intervention(action, question) {
  if (!(await confirmAction(question))) return;
  const answer = await intervene(action);
  if (answer.type === "ack") notice(`${action}: done`);
  else notice(`${action} refused: ${answer.message}`, true);
  redraw();
}

/**
 * The confirmation dialog: `question`, a choice of `targets` when given, and
 * the key when this session may not act. Resolves to `{node}` once
 * confirmed (the key, if asked, traded for a session first), else null.
 */
function confirmAction(question, targets = null) {
  const dialog = $("confirm");
  $("confirm-text").textContent = question;
  const choice = $("confirm-node");
  $("confirm-target").hidden = targets === null;
  choice.required = targets !== null;
  choice.replaceChildren(...(targets ?? []).map((name) => new Option(name, name)));
  const key = $("confirm-key");
  $("confirm-key-field").hidden = mayAct;
  key.required = !mayAct;
  key.value = "";
  $("confirm-error").textContent = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    const form = $("confirm-form");
    const onSubmit = async (event) => {
      event.preventDefault();
      if (event.submitter?.value === "cancel") return finish(null);
      if (!mayAct) {
        const opened = await openSession({ key: key.value }, (text) => ($("confirm-error").textContent = text));
        key.value = "";
        if (!opened) return;
        await learnAuthority();
      }
      finish({ node: choice.value });
    };
    const onCancel = () => finish(null);
    const finish = (answer) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
  });
}

/**
 * Sends one intervention on a stream of its own, opened with this browser's
 * session as it is now; resolves to the node's `ack` or `error`.
 */
function intervene(action) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/v1/events`);
  return new Promise((resolve) => {
    const done = (answer) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done({ type: "error", message: "the node did not answer" }), ANSWER_MS);
    socket.addEventListener("message", (message) => {
      const item = JSON.parse(message.data);
      if (item.type === "live") socket.send(JSON.stringify({ action }));
      else if (item.type === "ack" || item.type === "error") done(item);
    });
    socket.addEventListener("close", () => done({ type: "error", message: "the stream closed" }));
  });
}

/** POSTs `body` as JSON: `{ok, body}` or `{ok: false, error}` with the node's message. */
async function post(path, body) {
  let answer;
  try {
    answer = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    return { ok: false, error: `cannot reach this node: ${error.message}` };
  }
  if (!answer.ok) return { ok: false, error: await errorOf(answer, `${path} answered ${answer.status}`) };
  return { ok: true, body: await answer.json() };
}
