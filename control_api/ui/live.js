// Live: the event stream (GET …/events/stream, read through fetch so the token goes in a
// header), with the same filters as GET …/events. Pausing closes the stream; resuming reopens
// it from the last event seen (Last-Event-ID), so nothing recorded meanwhile is missed.
import { call, containerPath, download, readStream } from "./api.js";
import { html, Json, ms, OUTCOMES, shortId, useEffect, useRef, useState } from "./common.js";

const KEEP = 200;
const RETRY_MS = 2000;
const KINDS = ["run", "dry_run", "config_reload", "config_rejected"];

function query(filters) {
  const params = new URLSearchParams();
  if (filters.service) params.set("service", filters.service);
  if (filters.hookId.trim()) params.set("hookId", filters.hookId.trim());
  if (filters.outcome.length) params.set("outcome", filters.outcome.join(","));
  if (filters.kind) params.set("kind", filters.kind);
  if (filters.blocked) params.set("blocked", filters.blocked);
  const text = params.toString();
  return text ? `?${text}` : "";
}

function Filters({ services, value, onApply }) {
  const [draft, setDraft] = useState(value);
  const set = (name, v) => setDraft({ ...draft, [name]: v });
  const toggle = (outcome) =>
    set("outcome", draft.outcome.includes(outcome) ? draft.outcome.filter((o) => o !== outcome) : [...draft.outcome, outcome]);
  return html`<form class="filters" id="live-filters" onSubmit=${(e) => { e.preventDefault(); onApply(draft); }}>
    <label>service <select id="filter-service" value=${draft.service} onChange=${(e) => set("service", e.target.value)}>
      <option value="">any</option>${services.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
    <label>hook id <input id="filter-hook" value=${draft.hookId} onInput=${(e) => set("hookId", e.target.value)} /></label>
    <label>kind <select id="filter-kind" value=${draft.kind} onChange=${(e) => set("kind", e.target.value)}>
      <option value="">any</option>${KINDS.map((k) => html`<option value=${k}>${k}</option>`)}</select></label>
    <label>blocked <select id="filter-blocked" value=${draft.blocked} onChange=${(e) => set("blocked", e.target.value)}>
      <option value="">any</option><option value="true">yes</option><option value="false">no</option></select></label>
    <fieldset><legend>outcome</legend>${OUTCOMES.map(
      (o) => html`<label class="check"><input type="checkbox" data-outcome=${o} checked=${draft.outcome.includes(o)}
        onChange=${() => toggle(o)} />${o}</label>`,
    )}</fieldset>
    <button type="submit" id="filter-apply">Apply filters</button>
  </form>`;
}

export function Live({ container, summary }) {
  const [filters, setFilters] = useState({ service: "", hookId: "", outcome: [], kind: "", blocked: "" });
  const [paused, setPaused] = useState(false);
  const [status, setStatus] = useState("connecting");
  const [events, setEvents] = useState([]);
  const [selected, setSelected] = useState(null);
  const lastId = useRef(null);

  useEffect(() => {
    if (paused) {
      setStatus("paused");
      return undefined;
    }
    const controller = new AbortController();
    const path = containerPath(container, "/events/stream") + query(filters);
    (async () => {
      while (!controller.signal.aborted) {
        try {
          lastId.current = await readStream(path, {
            lastId: lastId.current,
            signal: controller.signal,
            onOpen: () => setStatus("live"),
            onEvent: (id, event) => {
              lastId.current = id;
              setEvents((current) => [{ seq: id, ...event }, ...current].slice(0, KEEP));
            },
          });
        } catch (err) {
          if (controller.signal.aborted) return;
          setStatus(`reconnecting (${err.message})`);
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    })();
    return () => controller.abort();
  }, [paused, filters]);

  const apply = (next) => {
    lastId.current = null; // new filters: from now on
    setEvents([]);
    setFilters(next);
  };

  return html`
    <${Filters} services=${Object.keys(summary?.hooksByService ?? {})} value=${filters} onApply=${apply} />
    <p class="stream-bar"><span id="live-status" class=${`badge ${status === "live" ? "ok" : ""}`}>${status}</span>
      <button id="live-pause" onClick=${() => setPaused(!paused)}>${paused ? "Resume" : "Pause"}</button>
      <button class="secondary" id="live-clear" onClick=${() => setEvents([])}>Clear</button>
      <button class="secondary" id="live-har" title="the captured exchanges these filters select"
        onClick=${() => download(containerPath(container, "/events.har") + query(filters), `${container}-events.har`)}>
        Export HAR</button>
      <span class="muted">Events recorded from now on appear at the top.</span></p>
    <div class="split">
      <table id="live-events" class="events">
        <thead><tr><th>time</th><th>kind</th><th>service</th><th>hook</th><th>request</th><th>outcome</th>
          <th>status</th><th>duration</th></tr></thead>
        <tbody>${events.map(
          (e) => html`<tr class=${`event ${e.outcome ?? ""} ${selected?.id === e.id ? "selected" : ""}`}
            data-event-id=${e.id} onClick=${() => setSelected(e)}>
            <td>${e.ts.slice(11, 23)}</td><td>${e.kind}</td><td>${e.service ?? ""}</td>
            <td><code>${shortId(e.hook_id)}</code></td><td>${e.method ?? ""} ${e.host ?? ""}${e.path ?? ""}</td>
            <td class="outcome">${e.outcome ?? ""}</td><td>${e.status ?? ""}</td><td>${ms(e.duration_ms)}</td>
          </tr>`,
        )}</tbody>
      </table>
      ${selected ? html`<${EventDetail} container=${container} event=${selected} />` : null}
    </div>`;
}

function EventDetail({ container, event }) {
  const [exchange, setExchange] = useState(null);
  useEffect(() => {
    setExchange(null);
    if (event.kind !== "run") return;
    (async () => {
      const answer = await call("GET", containerPath(container, `/events/${encodeURIComponent(event.id)}/exchange`));
      if (answer.ok) setExchange(answer.data.exchange);
    })();
  }, [event.id]);
  return html`<aside id="event-detail">
    <h3>${event.kind} ${event.outcome ?? ""} <small>${event.id}</small></h3>
    ${event.reason ? html`<p><strong>reason:</strong> ${event.reason}</p>` : null}
    ${event.error ? html`<p class="notice error">${event.error}</p>` : null}
    ${exchange ? html`<${Exchange} exchange=${exchange} />` : null}
    <${Json} value=${event} />
  </aside>`;
}

function Message({ title, first, message }) {
  return html`<h4>${title}</h4><p><code>${first}</code></p>
    <table class="headers">${message.headers.map(([name, value]) => html`<tr><th>${name}</th><td>${value}</td></tr>`)}</table>
    ${message.body_size
      ? html`<pre class="json">${message.body ?? `(binary, base64) ${message.body_base64}`}</pre>
          ${message.truncated ? html`<p class="muted">Truncated: ${message.body_size} bytes in all.</p>` : null}`
      : null}`;
}

function Exchange({ exchange }) {
  const { request, response } = exchange;
  return html`<div id="event-exchange">
    <${Message} title="Request" first=${`${request.method} ${request.url}`} message=${request} />
    ${response
      ? html`<${Message} title="Response" first=${`${response.status} ${response.reason}`} message=${response} />`
      : html`<p class="muted">No response (the flow ended without one).</p>`}
  </div>`;
}
