// Overview: the containers, their file versions, health (each degraded reason in words),
// exec-session workers and the events recorder.
import { call } from "./api.js";
import { html, useEffect, useState } from "./common.js";

const REFRESH_MS = 5000;

// Why /healthz says "degraded", one sentence per reason.
export function degradedReasons(health) {
  const reasons = [];
  for (const c of health.containers ?? []) {
    for (const problem of c.error ?? []) {
      reasons.push(
        `The hooks file ${c.file} of container ${c.id} is invalid on disk; the proxy keeps ` +
          `enforcing version ${c.file_version} until it is fixed: ${problem}`,
      );
    }
  }
  for (const p of health.exec_sessions?.problems ?? []) {
    reasons.push(
      `Exec session '${p.exec_id}' of hook ${p.hook ?? "?"} (container ${p.container}, service ` +
        `${p.service}) cannot load its script ${p.script}: ${p.problem}`,
    );
  }
  const events = health.events;
  if (events?.error) reasons.push(`Events are not being recorded: ${events.error}`);
  if (health.status !== "ok" && !reasons.length) {
    reasons.push("The API reports a problem this page does not know how to describe; see /healthz.");
  }
  return reasons;
}

export function Overview() {
  const [health, setHealth] = useState(null);
  const [containers, setContainers] = useState([]);
  const [error, setError] = useState(null);

  const load = async () => {
    const [h, c] = await Promise.all([call("GET", "/healthz"), call("GET", "/api/v1/containers")]);
    if (!h.ok || !c.ok) {
      setError((h.error ?? c.error).message);
      return;
    }
    setError(null);
    setHealth(h.data);
    setContainers(c.data.containers);
  };
  useEffect(() => {
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => clearInterval(timer);
  }, []);

  if (error) return html`<p class="notice error">${error}</p>`;
  if (!health) return html`<p class="muted">Loading…</p>`;
  const reasons = degradedReasons(health);
  const events = health.events;
  const workers = health.exec_sessions?.workers ?? [];
  return html`
    <section>
      <h2>Health: <span id="health-status" class=${`badge ${health.status}`}>${health.status}</span></h2>
      ${reasons.length
        ? html`<ul id="health-reasons" class="reasons">${reasons.map((r) => html`<li>${r}</li>`)}</ul>`
        : html`<p class="muted">Every hooks file is valid, every exec-session script loads, events are recorded.</p>`}
    </section>
    <section>
      <h2>Containers</h2>
      <table id="containers">
        <thead><tr><th>container</th><th>file version</th><th>services</th><th>hooks</th><th>file</th></tr></thead>
        <tbody>${containers.map((c) => {
          const file = health.containers.find((h) => h.id === c.id);
          return html`<tr data-container=${c.id}>
            <td>${c.id}</td><td class="version">${c.etag}</td><td>${c.services}</td>
            <td>${Object.entries(c.hooksByService).map(([s, n]) => `${s}: ${n}`).join(", ")}</td>
            <td>${file?.file ?? ""}${file?.error ? html` <span class="badge degraded">invalid</span>` : null}</td>
          </tr>`;
        })}</tbody>
      </table>
    </section>
    <section>
      <h2>Exec workers</h2>
      ${workers.length
        ? html`<table id="workers">
            <thead><tr><th>session</th><th>runtime</th><th>pid</th><th>state</th><th>runs</th>
              <th>in flight</th><th>restarts</th><th>last failure</th></tr></thead>
            <tbody>${workers.map(
              (w) => html`<tr><td>${w.container}/${w.exec_id}</td><td>${w.runtime}</td><td>${w.pid ?? "—"}</td>
                <td>${w.state}</td><td>${w.runs}</td><td>${w.in_flight}</td><td>${w.restarts}</td>
                <td>${w.last_failure ?? ""}</td></tr>`,
            )}</tbody>
          </table>`
        : html`<p class="muted">No worker is running (they start on a hook's first run).</p>`}
    </section>
    <section>
      <h2>Events</h2>
      ${events
        ? html`<dl id="events-recorder" class="figures">
            <div><dt>written</dt><dd id="events-written">${events.written}</dd></div>
            <div><dt>dropped</dt><dd id="events-dropped">${events.dropped}</dd></div>
            <div><dt>recording</dt><dd>${events.recording ? "yes" : "no (this process only reads)"}</dd></div>
            <div><dt>store</dt><dd>${events.store}</dd></div>
          </dl>`
        : html`<p class="muted">This process records no events.</p>`}
    </section>`;
}
