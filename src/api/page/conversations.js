// The conversations panel: every conversation of this node's HandoffPolicies
// with its owner, epoch and whether the agent may write here, and a handoff
// under way step by step, as its progress (`/api/v1/handoff/{id}`) says.

import { api } from "./session.js";
import { row } from "./views.js";

const $ = (id) => document.getElementById(id);

/** The last progress of each conversation's handoff, by conversation id: kept once done, so the outcome stays shown. */
const progressOf = new Map();

/**
 * Draws `/api/v1/sessions`; `handOver(session)` is the row's action. A
 * conversation frozen for a handoff started on this node gets its progress.
 */
export async function drawConversations(sessions, handOver) {
  await Promise.all(sessions.filter((session) => session.handoff).map(follow));
  const rows = sessions.map((session) => {
    const tr = row([
      ["Conversation", `${session.id} (${session.policy})`],
      ["Owner", session.owner ?? "unclaimed", session.owner ? "" : "muted"],
      ["Epoch", session.epoch == null ? "–" : String(session.epoch)],
      ["Writable here", session.writable ? "yes" : "no", session.writable ? "online" : "muted"],
      ["Handoff", phaseOf(session)],
    ]);
    tr.dataset.conversation = session.id;
    const steps = document.createElement("td");
    steps.dataset.label = "Steps";
    steps.className = "steps";
    tr.append(steps, actionCell(session, handOver));
    drawSteps(steps, progressOf.get(session.id));
    return tr;
  });
  if (rows.length === 0) rows.push(row([["Conversation", "none on this node", "muted"]]));
  $("conversation-rows").replaceChildren(...rows);
}

/** Shows `progress` of a handoff of conversation `id` now, without waiting for the next redraw. */
export function showProgress(id, progress) {
  progressOf.set(id, progress);
  const tr = [...$("conversation-rows").children].find((candidate) => candidate.dataset.conversation === id);
  if (tr) drawSteps(tr.querySelector(".steps"), progress);
}

/** Fetches the progress of the handoff a frozen conversation names; absent unless it was started here. */
async function follow(session) {
  const progress = await api(`/api/v1/handoff/${encodeURIComponent(session.handoff)}`, { quiet: true });
  if (progress) progressOf.set(session.id, progress);
}

function phaseOf(session) {
  if (session.phase === "frozen") return `handing to ${session.target ?? "another node"}`;
  if (session.phase === "forcing") return "being taken over";
  return session.phase;
}

/** One line per step so far; the outcome last, with the reason of a failure. */
function drawSteps(cell, progress) {
  if (!progress) {
    cell.replaceChildren();
    return;
  }
  const list = document.createElement("ol");
  for (const line of progress.lines) {
    const item = document.createElement("li");
    item.textContent = line;
    list.append(item);
  }
  const outcome = document.createElement("p");
  if (!progress.done) {
    outcome.textContent = `handing to ${progress.target}…`;
  } else if (progress.succeeded) {
    outcome.textContent = `done: ${progress.owner} owns it at epoch ${progress.epoch}`;
    outcome.className = "online";
  } else {
    const step = progress.failedStep ? ` at ${progress.failedStep}` : "";
    outcome.textContent = `failed${step}: ${progress.message ?? "no reason given"}`;
    outcome.className = "error";
  }
  outcome.dataset.outcome = progress.done ? (progress.succeeded ? "succeeded" : "failed") : "under way";
  const steps = document.createElement("div");
  steps.append(list, outcome);
  cell.replaceChildren(steps);
}

function actionCell(session, handOver) {
  const cell = document.createElement("td");
  cell.dataset.label = "";
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Hand over…";
  button.className = "hand-over";
  button.disabled = session.phase === "frozen" || session.phase === "forcing";
  button.addEventListener("click", () => handOver(session));
  cell.append(button);
  return cell;
}
