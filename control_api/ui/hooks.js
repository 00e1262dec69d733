// Hooks: each service's hooks in evaluation order, with every write the API offers. Every write
// sends the ETag of the version this page loaded (If-Match); a 412 means someone else wrote in
// between, and the page shows what is there now instead of overwriting it.
import { call, hooksPath, versionOf } from "./api.js";
import { ErrorBox, headerLines, html, Json, parseHeaders, shortId, useEffect, useState } from "./common.js";

// The form's fields, named by the paths the API's 422 `details` use.
const FIELDS = [
  ["description", "Description", "text"],
  ["match.method", "Method(s)", "text", "GET, a comma-separated list, or *"],
  ["match.path", "Path", "text", "/v1/** — * stays in a segment, ** spans them"],
  ["match.headers", "Headers", "lines", "one per line, name: value (value * = any)"],
  ["script.path", "Script", "text", "/hooks/x.py inside the scripts folder"],
  ["script.execId", "Exec session", "text", "empty: one process per run"],
  ["timeout", "Timeout (ms)", "text", "1-30000"],
  ["applies_to.groups", "Groups", "text", "comma-separated; empty: everyone"],
  ["failure_mode", "On failure", ["closed", "open"]],
  ["mode", "Mode", ["sync", "async"]],
  ["enabled", "Enabled", "checkbox"],
];
const SERVER_SET = ["id", "position", "created_at", "updated_at"];

const fieldId = (name) => `field-${name.replaceAll(".", "-").replaceAll("_", "-")}`;

function valuesOf(hook) {
  const method = hook?.match?.method ?? "GET";
  return {
    description: hook?.description ?? "",
    "match.method": Array.isArray(method) ? method.join(", ") : method,
    "match.path": hook?.match?.path ?? "/",
    "match.headers": headerLines(hook?.match?.headers),
    "script.path": hook?.script?.path ?? "",
    "script.execId": hook?.script?.execId ?? "",
    timeout: String(hook?.timeout ?? ""),
    "applies_to.groups": (hook?.applies_to?.groups ?? []).join(", "),
    failure_mode: hook?.failure_mode ?? "closed",
    mode: hook?.mode ?? "sync",
    enabled: hook?.enabled ?? true,
  };
}

const list = (text) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

// The hook to send: what the form edits, on top of every other field the hook has (a full
// replace must not drop what this form does not show, e.g. `cache` or `environment`).
// A hook as it may be sent back: without what the server sets.
function stored(hook) {
  const body = structuredClone(hook ?? {});
  for (const key of SERVER_SET) delete body[key];
  return body;
}

function bodyOf(values, original) {
  const body = stored(original);
  const method = values["match.method"].includes(",") ? list(values["match.method"]) : values["match.method"].trim();
  body.match = { ...body.match, method, path: values["match.path"], headers: parseHeaders(values["match.headers"]) };
  body.script = { ...body.script, path: values["script.path"] };
  if (values["script.execId"].trim()) body.script.execId = values["script.execId"].trim();
  else delete body.script.execId;
  const timeout = values.timeout.trim();
  if (!timeout) delete body.timeout;
  else body.timeout = /^-?\d+$/.test(timeout) ? Number(timeout) : timeout; // the API explains a bad one
  const groups = list(values["applies_to.groups"]);
  if (groups.length) body.applies_to = { groups };
  else delete body.applies_to;
  body.failure_mode = values.failure_mode;
  body.mode = values.mode;
  body.enabled = values.enabled;
  if (values.description.trim()) body.description = values.description;
  else delete body.description;
  return body;
}

// Which form field a 422 detail is about: the longest field name its path starts with.
function fieldOf(path) {
  let best = null;
  for (const [name] of FIELDS) {
    const under = path === name || path.startsWith(`${name}.`) || path.startsWith(`${name}[`);
    if (under && (!best || name.length > best.length)) best = name;
  }
  return best;
}

function HookForm({ service, hook, onSubmit, onCancel, error }) {
  const [values, setValues] = useState(valuesOf(hook));
  const set = (name, value) => setValues({ ...values, [name]: value });
  const byField = {};
  const general = [];
  for (const detail of error?.details ?? []) {
    const field = fieldOf(detail.field);
    if (field) (byField[field] ??= []).push(detail);
    else general.push(detail);
  }
  const submit = (event) => {
    event.preventDefault();
    onSubmit(bodyOf(values, hook));
  };
  const input = ([name, label, kind, hint]) => {
    const id = fieldId(name);
    let control;
    if (kind === "checkbox") {
      control = html`<input id=${id} type="checkbox" checked=${values[name]}
        onChange=${(e) => set(name, e.target.checked)} />`;
    } else if (Array.isArray(kind)) {
      control = html`<select id=${id} value=${values[name]} onChange=${(e) => set(name, e.target.value)}>
        ${kind.map((option) => html`<option value=${option}>${option}</option>`)}</select>`;
    } else if (kind === "lines") {
      control = html`<textarea id=${id} rows="2" value=${values[name]} placeholder=${hint}
        onInput=${(e) => set(name, e.target.value)} />`;
    } else {
      control = html`<input id=${id} type="text" value=${values[name]} placeholder=${hint ?? ""}
        onInput=${(e) => set(name, e.target.value)} />`;
    }
    const problems = byField[name];
    return html`<div class=${`field${problems ? " invalid" : ""}`}>
      <label for=${id}>${label}</label>${control}
      ${problems
        ? html`<span class="field-error" data-field=${name}>${problems.map((d) => d.reason).join("; ")}</span>`
        : null}
    </div>`;
  };
  return html`<form class="hook-form" id="hook-form" onSubmit=${submit}>
    <h3>${hook ? `Edit hook ${shortId(hook.id)} of ${service}` : `New hook for ${service}`}</h3>
    ${error
      ? html`<p class="notice error" id="form-error">${error.message}${general.length
          ? html`<ul>${general.map((d) => html`<li><code>${d.field}</code>: ${d.reason}</li>`)}</ul>`
          : null}</p>`
      : null}
    <div class="fields">${FIELDS.map(input)}</div>
    <button type="submit" id="hook-save">${hook ? "Save" : "Create"}</button>
    <button type="button" class="secondary" id="hook-cancel" onClick=${onCancel}>Cancel</button>
  </form>`;
}

function HookRow({ hook, last, busy, onToggle, onMove, onEdit, onDelete }) {
  const [confirming, setConfirming] = useState(false);
  const method = Array.isArray(hook.match.method) ? hook.match.method.join(",") : hook.match.method;
  return html`<tr data-hook-id=${hook.id} class=${hook.enabled === false ? "disabled" : ""}>
    <td>${hook.position}</td>
    <td><code title=${hook.id}>${shortId(hook.id)}</code></td>
    <td>${method}</td>
    <td><code>${hook.match.path}</code></td>
    <td><code>${hook.script.path}</code>${hook.script.execId ? html` <small>(${hook.script.execId})</small>` : null}</td>
    <td class="state">${hook.enabled === false ? "disabled" : "enabled"}</td>
    <td class="description">${hook.description ?? ""}</td>
    <td class="actions">
      <button class="toggle" disabled=${busy} onClick=${onToggle}>${hook.enabled === false ? "Enable" : "Disable"}</button>
      <button class="up" disabled=${busy || hook.position === 0} onClick=${() => onMove(-1)} title="move up">↑</button>
      <button class="down" disabled=${busy || last} onClick=${() => onMove(1)} title="move down">↓</button>
      <button class="edit" disabled=${busy} onClick=${onEdit}>Edit</button>
      ${confirming
        ? html`<button class="confirm-delete danger" onClick=${onDelete}>Delete it</button>
            <button class="secondary" onClick=${() => setConfirming(false)}>Keep</button>`
        : html`<button class="delete" disabled=${busy} onClick=${() => setConfirming(true)}>Delete</button>`}
    </td>
  </tr>`;
}

// A 412: nothing was written. Shows the version now current and, for a hook, how it looks now.
function Conflict({ conflict, onReload, onOverwrite }) {
  return html`<div class="notice conflict" id="conflict" role="alert">
    <strong>These hooks changed since you loaded them</strong>
    ${` (you loaded `}<code id="conflict-loaded">${conflict.loaded}</code>${`; it is now `}<code
      id="conflict-current">${conflict.current}</code>${`). Nothing was written.`}
    ${conflict.fresh !== undefined
      ? html`<p>What is there now:</p>${conflict.fresh === null
          ? html`<p id="conflict-fresh">The hook no longer exists.</p>`
          : html`<${Json} id="conflict-fresh" value=${conflict.fresh} />`}`
      : null}
    <button id="conflict-reload" onClick=${onReload}>Reload (discard my change)</button>
    ${onOverwrite
      ? html`<button id="conflict-overwrite" class="secondary" onClick=${onOverwrite}>Apply my change to the new version</button>`
      : null}
  </div>`;
}

export function Hooks({ container }) {
  const [loaded, setLoaded] = useState(null); // {hooks, etag}
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const [conflict, setConflict] = useState(null); // {loaded, current, fresh, retry}
  const [form, setForm] = useState(null); // {service, hook, error}
  const [busy, setBusy] = useState(false);

  const load = async () => {
    const answer = await call("GET", hooksPath(container));
    if (!answer.ok) return setError(answer.error);
    setError(null);
    setLoaded({ hooks: answer.data.hooks, etag: answer.etag });
  };
  useEffect(() => {
    load();
  }, []);

  // One write with the loaded version's ETag. `hookRef`: [service, id] of the hook it is about,
  // to show its fresh state on a 412.
  // `redo(etag)`: how to send the same change again over a newer version (after a 412).
  const write = async (method, path, body, what, hookRef = null, etag = loaded.etag, redo = null) => {
    setBusy(true);
    setNotice(null);
    const answer = await call(method, path, { body, etag });
    setBusy(false);
    if (answer.ok) {
      setConflict(null);
      setNotice({ kind: "ok", text: `${what}: ${answer.message} (now ${answer.data?.etag ?? versionOf(answer.etag)})` });
      await load();
      return answer;
    }
    if (answer.status === 412) {
      let fresh;
      if (hookRef) {
        const current = await call("GET", hooksPath(container, hookRef[0], hookRef[1]));
        fresh = current.ok ? current.data.hook : null;
      }
      const retry = redo ? () => redo(answer.etag) : () => write(method, path, body, what, hookRef, answer.etag);
      setConflict({ loaded: versionOf(etag), current: versionOf(answer.etag), fresh, retry });
    } else if (answer.status !== 422) {
      setNotice({ kind: "error", error: answer.error });
    }
    return answer;
  };

  const save = async (body, etag = loaded.etag) => {
    const { service, hook } = form;
    const redo = (newer) => save(body, newer);
    const answer = hook
      ? await write("PATCH", hooksPath(container, service, hook.id), body, `Saved ${shortId(hook.id)}`,
          [service, hook.id], etag, redo)
      : await write("POST", hooksPath(container, service), body, `Created a hook in ${service}`, null, etag, redo);
    if (answer.ok) setForm(null);
    else if (answer.status === 422) setForm({ ...form, error: answer.error });
  };

  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!loaded) return html`<p class="muted">Loading…</p>`;
  return html`
    <p class="muted">Loaded <code id="hooks-version">${versionOf(loaded.etag)}</code>. Hooks run top to
      bottom; the first that matches wins. <button class="link" id="hooks-reload" onClick=${load}>Reload</button></p>
    ${notice?.kind === "ok" ? html`<p class="notice ok" id="hooks-notice">${notice.text}</p>` : null}
    ${notice?.kind === "error" ? html`<${ErrorBox} id="hooks-error" error=${notice.error} />` : null}
    ${conflict
      ? html`<${Conflict} conflict=${conflict}
          onReload=${() => { setConflict(null); setForm(null); load(); }}
          onOverwrite=${conflict.retry} />`
      : null}
    ${form
      ? html`<${HookForm} key=${form.hook?.id ?? `new-${form.service}`} service=${form.service} hook=${form.hook}
          error=${form.error} onSubmit=${save} onCancel=${() => setForm(null)} />`
      : null}
    ${Object.entries(loaded.hooks).map(
      ([service, hooks]) => html`<section class="service" data-service=${service}>
        <h2>${service} <button class="add" data-service=${service}
          onClick=${() => setForm({ service, hook: null })}>Add hook</button></h2>
        ${hooks.length
          ? html`<table class="hooks">
              <thead><tr><th>#</th><th>id</th><th>method</th><th>path</th><th>script</th><th>state</th>
                <th>description</th><th></th></tr></thead>
              <tbody>${hooks.map(
                (hook, index) => html`<${HookRow} key=${hook.id} hook=${hook} busy=${busy}
                  last=${index === hooks.length - 1}
                  onToggle=${() => {
                    const body = { ...stored(hook), enabled: hook.enabled === false };
                    const verb = hook.enabled === false ? "Enabled" : "Disabled";
                    write("PATCH", hooksPath(container, service, hook.id), body, `${verb} ${shortId(hook.id)}`, [service, hook.id]);
                  }}
                  onMove=${(step) =>
                    write("PATCH", hooksPath(container, service, hook.id, "/position"),
                      { position: hook.position + step }, `Moved ${shortId(hook.id)}`, [service, hook.id])}
                  onEdit=${() => setForm({ service, hook })}
                  onDelete=${() =>
                    write("DELETE", hooksPath(container, service, hook.id), undefined,
                      `Deleted ${shortId(hook.id)}`, [service, hook.id])} />`,
              )}</tbody>
            </table>`
          : html`<p class="muted">No hooks: every flow of ${service} passes untouched.</p>`}
      </section>`,
    )}`;
}
