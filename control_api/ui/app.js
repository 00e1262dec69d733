// The dashboard's shell: the token prompt, the container picker and the five pages.
import { call, token, whenUnauthorized } from "./api.js";
import { html, render, useEffect, useState } from "./common.js";
import { Debug } from "./debug.js";
import { Hooks } from "./hooks.js";
import { Live } from "./live.js";
import { Overview } from "./overview.js";
import { Stats } from "./stats.js";

const PAGES = [
  ["overview", "Overview", Overview],
  ["hooks", "Hooks", Hooks],
  ["live", "Live", Live],
  ["stats", "Stats", Stats],
  ["debug", "Debug", Debug],
];

const pageFromHash = () => {
  const name = location.hash.replace(/^#\/?/, "");
  return PAGES.some(([key]) => key === name) ? name : "overview";
};

function Login({ refused, onLogin }) {
  const [value, setValue] = useState("");
  const submit = (event) => {
    event.preventDefault();
    onLogin(value);
  };
  return html`<form class="login" id="login-form" onSubmit=${submit}>
    <h2>This control API needs a token</h2>
    <p>It is the one the proxy was started with (<code>--token</code> or
      <code>PROXY_HOOKS_API_TOKEN</code>). It stays in this tab only (sessionStorage).</p>
    ${refused ? html`<p class="notice error" id="login-error">That token was refused (401).</p>` : null}
    <input id="token" type="password" autocomplete="off" placeholder="token"
      value=${value} onInput=${(e) => setValue(e.target.value)} />
    <button id="login" type="submit">Use this token</button>
  </form>`;
}

function App() {
  const [page, setPage] = useState(pageFromHash());
  const [auth, setAuth] = useState({ state: "checking" });
  const [containers, setContainers] = useState([]);
  const [container, setContainer] = useState(null);

  const load = async () => {
    const answer = await call("GET", "/api/v1/containers");
    if (answer.status === 401) {
      const refused = Boolean(token.get());
      token.clear();
      setAuth({ state: "needed", refused });
    } else if (answer.ok) {
      setContainers(answer.data.containers);
      setContainer((current) => current ?? answer.data.containers[0]?.id ?? null);
      setAuth({ state: "ok" });
    } else {
      setAuth({ state: "error", message: answer.error.message });
    }
  };

  useEffect(() => {
    whenUnauthorized(() => setAuth((current) => (current.state === "ok" ? { state: "needed" } : current)));
    const onHash = () => setPage(pageFromHash());
    addEventListener("hashchange", onHash);
    load();
    return () => removeEventListener("hashchange", onHash);
  }, []);

  const login = (value) => {
    token.set(value.trim());
    load();
  };
  const logout = () => {
    token.clear();
    load();
  };

  let body;
  if (auth.state === "checking") body = html`<p class="muted">Connecting…</p>`;
  else if (auth.state === "needed") body = html`<${Login} refused=${auth.refused} onLogin=${login} />`;
  else if (auth.state === "error") body = html`<p class="notice error">${auth.message}</p>`;
  else if (!container) body = html`<p class="notice">This API serves no container.</p>`;
  else {
    const Page = PAGES.find(([key]) => key === page)[2];
    const summary = containers.find((c) => c.id === container);
    body = html`<${Page} key=${`${page}/${container}`} container=${container} summary=${summary}
      containers=${containers} />`;
  }

  return html`<header>
      <h1>proxy-hooks</h1>
      <nav>${PAGES.map(
        ([key, title]) => html`<a href=${`#/${key}`} id=${`nav-${key}`}
          class=${key === page ? "active" : ""}>${title}</a>`,
      )}</nav>
      ${containers.length > 1
        ? html`<select id="container" value=${container} onChange=${(e) => setContainer(e.target.value)}>
            ${containers.map((c) => html`<option value=${c.id}>${c.id}</option>`)}
          </select>`
        : html`<span class="container-name">${container ?? ""}</span>`}
      ${token.get() ? html`<button class="link" id="logout" onClick=${logout}>Forget token</button>` : null}
    </header>
    <main id=${`page-${page}`}>${body}</main>`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
