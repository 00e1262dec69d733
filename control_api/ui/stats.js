// Stats: runs over time by outcome (uPlot, loaded as a classic script: window.uPlot), block
// rate, p95 duration and the per-hook table, for 24h, 7d or 30d.
import { call, containerPath } from "./api.js";
import { ErrorBox, html, ms, OUTCOMES, shortId, useEffect, useRef, useState } from "./common.js";

const PERIODS = ["24h", "7d", "30d"];
const COLORS = {
  continued: "#4c8c4a",
  modified: "#3a78c2",
  responded: "#8a5cc2",
  blocked: "#c2473a",
  failed: "#d98b1f",
  timeout: "#7a5a2a",
  observed: "#777777",
};

function Chart({ timeline }) {
  const box = useRef(null);
  useEffect(() => {
    if (!window.uPlot || !box.current) return undefined;
    const xs = timeline.map((b) => Date.parse(b.start) / 1000);
    const data = [xs, ...OUTCOMES.map((o) => timeline.map((b) => b.byOutcome[o] ?? 0))];
    const series = [
      {},
      ...OUTCOMES.map((o) => ({ label: o, stroke: COLORS[o], width: 2, points: { show: true, size: 4 } })),
    ];
    const width = Math.max(320, box.current.clientWidth || 800);
    const plot = new window.uPlot(
      { width, height: 260, series, axes: [{}, { label: "runs" }], scales: { x: { time: true } } },
      data,
      box.current,
    );
    return () => plot.destroy();
  }, [timeline]);
  return html`<div id="stats-chart" ref=${box}></div>`;
}

export function Stats({ container }) {
  const [period, setPeriod] = useState("24h");
  const [stats, setStats] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    (async () => {
      const answer = await call("GET", containerPath(container, `/stats?period=${period}`));
      if (answer.ok) {
        setError(null);
        setStats(answer.data);
      } else setError(answer.error);
    })();
  }, [period]);

  return html`
    <p class="periods">${PERIODS.map(
      (p) => html`<button data-period=${p} class=${p === period ? "active" : "secondary"}
        onClick=${() => setPeriod(p)}>${p}</button>`,
    )}</p>
    <${ErrorBox} error=${error} />
    ${stats
      ? html`<dl class="figures" id="stats-figures">
            <div><dt>runs</dt><dd id="stat-total">${stats.totalEvents}</dd></div>
            <div><dt>blocked</dt><dd id="stat-blocked">${stats.blockedEvents}</dd></div>
            <div><dt>block rate</dt><dd id="stat-block-rate">${stats.blockRate} %</dd></div>
            <div><dt>p95 duration</dt><dd id="stat-p95">${ms(stats.p95DurationMs)}</dd></div>
            <div><dt>average</dt><dd>${ms(stats.avgDurationMs)}</dd></div>
            <div><dt>dropped</dt><dd>${stats.dropped}</dd></div>
          </dl>
          <h2>Runs over time, by outcome</h2>
          <${Chart} timeline=${stats.timeline} />
          <h2>Per hook</h2>
          <table id="stats-hooks">
            <thead><tr><th>hook</th><th>service</th><th>runs</th><th>blocked</th><th>block rate</th><th>average</th></tr></thead>
            <tbody>${stats.hookBreakdown.map(
              (h) => html`<tr data-hook-id=${h.hookId}><td><code title=${h.hookId}>${shortId(h.hookId)}</code></td>
                <td>${h.service}</td><td class="runs">${h.total}</td><td>${h.blocked}</td>
                <td>${h.total ? ((h.blocked * 100) / h.total).toFixed(1) : 0} %</td><td>${ms(h.avgDurationMs)}</td></tr>`,
            )}</tbody>
          </table>`
      : html`<p class="muted">Loading…</p>`}`;
}
