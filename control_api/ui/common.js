// Small pieces the pages share.
import { html } from "./vendor/htm-preact-standalone.module.js";

export { html };
export {
  render,
  useCallback,
  useEffect,
  useMemo,
  useRef,
  useState,
} from "./vendor/htm-preact-standalone.module.js";

export const OUTCOMES = ["continued", "modified", "responded", "blocked", "failed", "timeout", "observed"];

export function Json({ value, id }) {
  return html`<pre class="json" id=${id}>${JSON.stringify(value, null, 2)}</pre>`;
}

// An API error in words: the message, then each detail as "field: reason".
export function ErrorBox({ error, id }) {
  if (!error) return null;
  return html`<div class="notice error" id=${id} role="alert">
    <strong>${error.message}</strong>
    ${error.details?.length
      ? html`<ul>${error.details.map((d) => html`<li><code>${d.field}</code>: ${d.reason}</li>`)}</ul>`
      : null}
  </div>`;
}

// "name: value" lines <-> a header object.
export function parseHeaders(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    const name = (at < 0 ? line : line.slice(0, at)).trim();
    headers[name] = at < 0 ? "" : line.slice(at + 1).trim();
  }
  return headers;
}

export const headerLines = (headers) =>
  Object.entries(headers ?? {})
    .map(([name, value]) => `${name}: ${value}`)
    .join("\n");

export const shortId = (id) => (id ? `${id.slice(0, 6)}…${id.slice(-4)}` : "—");

export const ms = (value) => (value === null || value === undefined ? "—" : `${Number(value).toFixed(1)} ms`);
