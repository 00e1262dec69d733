// Talking to the control API from the page: the bearer token (kept in sessionStorage, never in a
// URL), the envelope, If-Match, and Server-Sent Events read through fetch() so that the stream
// carries the Authorization header too (EventSource cannot send headers).

const TOKEN_KEY = "proxy-hooks-token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

let unauthorized = () => {};
export function whenUnauthorized(callback) {
  unauthorized = callback;
}

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  const current = token.get();
  if (current) result.Authorization = `Bearer ${current}`;
  return result;
}

export const containerPath = (container, rest = "") =>
  `/api/v1/containers/${encodeURIComponent(container)}/proxy${rest}`;
export const hooksPath = (container, service = null, hookId = null, rest = "") =>
  containerPath(container, "/hooks") +
  (service === null ? "" : `/${encodeURIComponent(service)}`) +
  (hookId === null ? "" : `/${encodeURIComponent(hookId)}`) +
  rest;

// One API call. Never throws: { status, ok, data, error, etag, message }; `error` is the
// envelope's error body ({message, code, details}) or our own words when the API is unreachable.
export async function call(method, path, { body, etag } = {}) {
  const init = { method, headers: headers(etag ? { "If-Match": etag } : {}), cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    return { status: 0, ok: false, error: { message: `The API cannot be reached (${err.message})` } };
  }
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  if (response.status === 401) unauthorized();
  return {
    status: response.status,
    ok: response.ok,
    data: json?.data,
    message: json?.message,
    error: response.ok ? null : json ?? { message: `${response.status} ${response.statusText}` },
    etag: response.headers.get("ETag"),
  };
}

export const versionOf = (etag) => (etag ? etag.replace(/^W\//, "").replaceAll('"', "") : "?");

// Server-Sent Events over fetch(): calls onEvent(id, data) for each event until the stream ends
// or `signal` aborts. Resolves with the last id seen (for Last-Event-ID); throws on an HTTP error.
export async function readStream(path, { lastId, signal, onEvent, onOpen }) {
  const extra = { Accept: "text/event-stream" };
  if (lastId) extra["Last-Event-ID"] = lastId;
  const response = await fetch(path, { headers: headers(extra), signal, cache: "no-store" });
  if (!response.ok) {
    if (response.status === 401) unauthorized();
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).message ?? message;
    } catch {
      /* not the envelope */
    }
    throw new Error(message);
  }
  onOpen?.();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let last = lastId;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return last;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (id !== null) last = id;
      if (data.length) onEvent(id, JSON.parse(data.join("\n")));
    }
  }
}

// Fetch a file with the token and hand it to the browser as a download (a plain link could not
// carry the Authorization header).
export async function download(path, filename) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  if (response.status === 401) unauthorized();
  if (!response.ok) return false;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  return true;
}
