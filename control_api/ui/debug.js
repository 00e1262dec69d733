// Debug: why a request would (not) run a hook (POST …/match), and what a hook's script does
// with a sample request (POST …/hooks/{service}/{hookId}/test, optionally with another script).
import { call, containerPath, hooksPath } from "./api.js";
import { ErrorBox, html, Json, parseHeaders, shortId, useEffect, useState } from "./common.js";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

function field(id, label, value, set, extra = {}) {
  return html`<div class="field"><label for=${id}>${label}</label>
    <input id=${id} type="text" value=${value} onInput=${(e) => set(e.target.value)} ...${extra} /></div>`;
}

function methodSelect(id, value, set) {
  return html`<div class="field"><label for=${id}>Method</label>
    <select id=${id} value=${value} onChange=${(e) => set(e.target.value)}>
      ${METHODS.map((m) => html`<option value=${m}>${m}</option>`)}</select></div>`;
}

function headersBox(id, value, set) {
  return html`<div class="field"><label for=${id}>Headers</label>
    <textarea id=${id} rows="2" placeholder="name: value, one per line" value=${value}
      onInput=${(e) => set(e.target.value)} /></div>`;
}

function Explain({ container }) {
  const [url, setUrl] = useState("http://auth.demo.test/v1/users/42");
  const [method, setMethod] = useState("GET");
  const [headers, setHeaders] = useState("");
  const [client, setClient] = useState("127.0.0.1");
  const [user, setUser] = useState("");
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);

  const submit = async (event) => {
    event.preventDefault();
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      setError({ message: `Not a URL: ${url} (write it as http://host[:port]/path)` });
      return;
    }
    const body = {
      host: parsed.host,
      method,
      path: parsed.pathname + parsed.search,
      headers: parseHeaders(headers),
      client: { address: client || "127.0.0.1", ...(user ? { user } : {}) },
    };
    const answer = await call("POST", containerPath(container, "/match"), { body });
    setError(answer.ok ? null : answer.error);
    setResult(answer.ok ? answer.data : null);
  };

  return html`<section><h2>Explain: which hook would run?</h2>
    <form id="explain-form" class="inline-form" onSubmit=${submit}>
      ${field("explain-url", "URL", url, setUrl)} ${methodSelect("explain-method", method, setMethod)}
      ${headersBox("explain-headers", headers, setHeaders)}
      ${field("explain-client", "Client address", client, setClient)} ${field("explain-user", "Proxy user", user, setUser)}
      <button type="submit" id="explain-run">Explain</button>
    </form>
    <${ErrorBox} error=${error} />
    ${result ? html`<${Explanation} result=${result} />` : null}</section>`;
}

function Explanation({ result }) {
  return html`<div id="explain-result">
    <p>Service: <strong id="explain-service">${result.service ?? "none"}</strong>
      ${result.reason ? html` — ${result.reason}` : null}
      ${result.refused ? html` <span class="badge degraded">refused: ${JSON.stringify(result.refused)}</span>` : null}</p>
    <p>Canonical path <code>${result.path?.canonical}</code>; the upstream gets <code>${result.path?.forwarded}</code>.
      Winner: <strong id="explain-winner">${result.winner ? `#${result.winner.position} ${result.winner.id}` : "none"}</strong></p>
    <table class="verdicts"><thead><tr><th>#</th><th>hook</th><th>verdict</th><th>why</th></tr></thead>
      <tbody>${(result.hooks ?? []).map(
        (h) => html`<tr data-hook-id=${h.id} class=${h.matched && h.reached ? "winner" : h.reached ? "" : "unreached"}>
          <td>${h.position}</td><td><code title=${h.id}>${shortId(h.id)}</code></td>
          <td class="verdict">${h.matched ? (h.reached ? "runs" : "matches, but an earlier hook won") : "no match"}</td>
          <td>${h.reasons.join("; ")}</td></tr>`,
      )}</tbody></table>
  </div>`;
}

function DryRun({ container }) {
  const [hooks, setHooks] = useState([]);
  const [target, setTarget] = useState("");
  const [method, setMethod] = useState("GET");
  const [path, setPath] = useState("/");
  const [headers, setHeaders] = useState("");
  const [body, setBody] = useState("");
  const [override, setOverride] = useState("");
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    (async () => {
      const answer = await call("GET", hooksPath(container));
      if (!answer.ok) return setError(answer.error);
      const all = Object.entries(answer.data.hooks).flatMap(([service, list]) => list.map((h) => ({ service, ...h })));
      setHooks(all);
      if (all.length) setTarget(`${all[0].service}/${all[0].id}`);
    })();
  }, []);

  const submit = async (event) => {
    event.preventDefault();
    const [service, hookId] = target.split("/");
    const sample = { method, path, headers: parseHeaders(headers) };
    if (body) sample.body = body;
    if (override.trim()) sample.script_override = override.trim();
    const answer = await call("POST", hooksPath(container, service, hookId, "/test"), { body: sample });
    setError(answer.ok ? null : answer.error);
    setResult(answer.ok ? answer.data : null);
  };

  return html`<section><h2>Dry run: what does the script do?</h2>
    <form id="dryrun-form" class="inline-form" onSubmit=${submit}>
      <div class="field"><label for="dryrun-hook">Hook</label>
        <select id="dryrun-hook" value=${target} onChange=${(e) => setTarget(e.target.value)}>
          ${hooks.map((h) => html`<option value=${`${h.service}/${h.id}`}>${h.service} #${h.position}
            ${h.description ?? h.script.path}</option>`)}</select></div>
      ${methodSelect("dryrun-method", method, setMethod)} ${field("dryrun-path", "Path", path, setPath)}
      ${headersBox("dryrun-headers", headers, setHeaders)} ${field("dryrun-body", "Body", body, setBody)}
      ${field("dryrun-override", "Script override", override, setOverride, { placeholder: "/hooks/other.py (optional)" })}
      <button type="submit" id="dryrun-run">Dry-run</button>
    </form>
    <${ErrorBox} error=${error} />
    ${result
      ? html`<div id="dryrun-result">
          <p>Outcome: <strong id="dryrun-outcome">${result.outcome}</strong> (${result.script}, ${result.runtime},
            ${result.execution_time_ms} ms)${result.reason ? html` — ${result.reason}` : null}</p>
          ${result.error ? html`<p class="notice error">${result.error}</p>` : null}
          <${Json} value=${result} /></div>`
      : null}</section>`;
}

export function Debug({ container }) {
  return html`<${Explain} container=${container} /><${DryRun} container=${container} />`;
}
