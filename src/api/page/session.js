// The page's session and its calls to this node's API: trades a key or a
// one-time ticket for the session cookie, and reads the API with it.

const $ = (id) => document.getElementById(id);

/** `#key=…` or `#ticket=…` of the address, if any, dropped from the address bar and history. */
export function takeFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const secret = params.get("ticket")
    ? { ticket: params.get("ticket") }
    : params.get("key")
      ? { key: params.get("key") }
      : null;
  // The fragment never reaches the server; the address bar must not keep it either.
  if (secret) history.replaceState(null, "", location.pathname + location.search);
  return secret;
}

/** Trades `{key}` or `{ticket}` for the session cookie; false when refused (said by `report`). */
export async function openSession(secret, report = notice) {
  const answer = await fetch("/ui/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(secret),
    credentials: "same-origin",
  });
  if (!answer.ok) {
    report(await errorOf(answer, "the node refused the key"), true);
    return false;
  }
  report("");
  return true;
}

/** Ends the session: the cookie is forgotten by the node and the browser. */
export async function closeSession() {
  await fetch("/ui/session", { method: "DELETE", credentials: "same-origin" });
}

/**
 * GETs `path` of the API: its JSON, null when the node does not let this
 * browser in (401), undefined when it failed otherwise (said in the notice,
 * unless `quiet`).
 */
export async function api(path, { quiet = false } = {}) {
  let answer;
  try {
    answer = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
  } catch (error) {
    notice(`cannot reach this node: ${error.message}`, true);
    return undefined;
  }
  if (answer.status === 401) return null;
  if (!answer.ok) {
    if (!quiet) notice(await errorOf(answer, `${path} answered ${answer.status}`), true);
    return undefined;
  }
  return answer.json();
}

/** One line at the top of the page; an error is drawn as one. */
export function notice(text, isError = false) {
  const line = $("notice");
  line.textContent = text;
  line.className = isError ? "error" : "";
}

/** The API's `message` of a refusal, else `fallback`. */
export async function errorOf(answer, fallback) {
  try {
    const body = await answer.json();
    return body.message ?? fallback;
  } catch {
    return fallback;
  }
}
