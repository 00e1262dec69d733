"""Scripts stay in their box, through a real mitmdump in front of a real upstream with a real
client: hostile hook scripts that try to outlive their run or the proxy (setsid, double fork,
nohup, daemonizing, ignoring signals, holding stdout), a script swapped for a symlink to a
file outside the scripts folder while traffic flows, and hooks_script_user."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from addon.enforcer import ProxyHooks
from addon.engine import Verdict, session_script
from addon.scripts import minimal_env
from tests.harness import Mitmdump, Upstream, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, home, upstream  # noqa: F401 - fixtures

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="hooks_script_user needs the proxy to run as root")

ESCAPES = ["setsid", "setsid-command", "double-fork", "nohup", "daemon", "ignore-signals", "hold-stdout"]
PER_RUN = [
    *[pytest.param("/escape.py", how, id=f"python-{how}") for how in ESCAPES],
    *[pytest.param("/escape.sh", how, id=f"bash-{how}") for how in ESCAPES],
    *[
        pytest.param("/escape.js", how, id=f"node-{how}", marks=needs_node)
        for how in ("setsid", "hold-stdout")
    ],
]
SESSION_ESCAPES = ["setsid", "double-fork", "daemon", "child"]
RACE_REQUESTS = 300
OUTSIDE_MARK = "OUTSIDE"


@pytest.fixture(scope="module")
def proxy(home: Path, upstream: Upstream) -> Iterator[Mitmdump]:
    process = Mitmdump(home / "e2e.json", home / "confdir", env={"PROXY_HOOKS_TEST_SECRET": "leak"})
    yield process
    process.stop()


def send(proxy: Mitmdump, **headers: str) -> httpx.Response:
    with proxy.client() as http:
        return http.get("http://auth.test/x", headers=headers)


def gone(pid: int) -> bool:
    """Not running, and not even a zombie: reaped."""
    return not os.path.exists(f"/proc/{pid}")


def recorded(pidfile: Path) -> list[int]:
    pids = [int(line) for line in pidfile.read_text().split()]
    assert pids, "the escaped process did not record its pid"
    return pids


def events(api: httpx.Client, hook_id: str) -> list[dict[str, Any]]:
    url = "/api/v1/containers/e2e/proxy/events"
    found: list[dict[str, Any]] = api.get(url, params={"limit": 50}).json()["data"]["events"]
    return [e for e in found if e["hook_id"] == hook_id]


# --- nothing a per-run script starts outlives its run ---


@pytest.mark.parametrize(("script", "how"), PER_RUN)
def test_nothing_a_per_run_script_starts_outlives_its_run(
    proxy: Mitmdump, api: httpx.Client, tmp_path: Path, script: str, how: str
) -> None:
    [created] = set_hooks(api, "e2e", "auth", [hook("/**", script, timeout=10_000)])["hooks"]
    pidfile = tmp_path / "pids"
    response = send(proxy, **{"x-escape": how, "x-pidfile": str(pidfile)})
    # The run is the script's own: it answered and exited; whatever still holds its stdout is
    # killed, not waited for (no timeout).
    assert response.status_code == 200, response.text
    assert "left one behind" in response.text
    pids = recorded(pidfile)
    wait_for(lambda: all(gone(pid) for pid in pids), 10, f"what the {how} run left behind {pids} to be gone")
    [run] = wait_for(lambda: events(api, created["id"]), 10, "the run's event")
    assert run["outcome"] == "responded" and run["exit_code"] == 0


@pytest.mark.parametrize("script", ["/escape.py", "/escape.sh"])
def test_a_script_that_kills_its_supervisor_fails_and_leaves_nothing(
    proxy: Mitmdump, api: httpx.Client, tmp_path: Path, script: str
) -> None:
    """A script sharing its supervisor's user can kill it; what it started is then re-parented
    to the spawner, which kills it: the run fails, nothing stays."""
    set_hooks(api, "e2e", "auth", [hook("/**", script, timeout=10_000)])
    pidfile = tmp_path / "pids"
    response = send(proxy, **{"x-escape": "kill-supervisor", "x-pidfile": str(pidfile)})
    assert response.status_code == 502, response.text
    assert "supervisor was killed" in response.json()["reason"]
    pids = recorded(pidfile)
    wait_for(lambda: all(gone(pid) for pid in pids), 10, f"what the run left behind {pids} to be gone")
    # The spawner carries on: the next run works.
    assert send(proxy, **{"x-escape": "setsid", "x-pidfile": str(tmp_path / "next")}).status_code == 200


def test_a_timed_out_script_takes_its_escapees_with_it(
    proxy: Mitmdump, api: httpx.Client, home: Path, tmp_path: Path
) -> None:
    (home / "scripts" / "escape_then_hang.sh").write_text(
        '#!/usr/bin/env bash\nevent=$(cat)\npidfile=$(printf "%s" "$event" | '
        'sed -n \'s/.*\\["x-pidfile", "\\([^"]*\\)"\\].*/\\1/p\')\n'
        'setsid sh -c \'trap "" TERM HUP; echo $$ >> "$0"; exec sleep 300\' "$pidfile" '
        '</dev/null >/dev/null 2>&1 &\nuntil [ -s "$pidfile" ]; do sleep 0.01; done\nexec sleep 300\n'
    )
    set_hooks(api, "e2e", "auth", [hook("/**", "/escape_then_hang.sh", timeout=1000)])
    pidfile = tmp_path / "pids"
    response = send(proxy, **{"x-pidfile": str(pidfile)})
    assert response.status_code == 504
    pids = recorded(pidfile)
    wait_for(lambda: all(gone(pid) for pid in pids), 10, f"the timed-out run's escapee {pids} to be gone")


# --- exec sessions: nothing a handle() starts outlives its worker, or the proxy ---


def session_hook(script: str, exec_id: str) -> dict[str, Any]:
    spec = hook("/**", script, timeout=10_000)
    spec["script"]["execId"] = exec_id
    return spec


@pytest.mark.parametrize(
    ("script", "how"),
    [
        *[pytest.param("/escape_session.py", how, id=f"python-{how}") for how in SESSION_ESCAPES],
        pytest.param("/escape_session.js", "setsid", id="node-setsid", marks=needs_node),
    ],
)
def test_nothing_a_handle_starts_outlives_its_worker(
    proxy: Mitmdump, api: httpx.Client, tmp_path: Path, script: str, how: str
) -> None:
    set_hooks(api, "e2e", "auth", [session_hook(script, f"escape-{uuid.uuid4().hex[:8]}")])
    pidfile = tmp_path / "pids"
    response = send(proxy, **{"x-escape": how, "x-pidfile": str(pidfile)})
    assert response.status_code == 200, response.text
    pids = recorded(pidfile)
    # The worker is still there, so is what its handle started; when the worker goes, it goes.
    crash = send(proxy, **{"x-escape": "crash"})
    assert crash.status_code == 502 and "exited with code 3" in crash.json()["reason"]
    wait_for(lambda: all(gone(pid) for pid in pids), 10, f"what the handle left behind ({pids}) to be gone")


def test_nothing_outlives_the_proxy(home: Path, upstream: Upstream, tmp_path: Path) -> None:
    own = Mitmdump(home / "e2e.json", tmp_path / "confdir")
    pids: list[int] = []
    try:
        with own.api() as own_api:
            scripts = ["/escape_session.py"] + (["/escape_session.js"] if shutil.which("node") else [])
            for n, script in enumerate(scripts):
                for how in ("setsid", "daemon") if script.endswith(".py") else ("setsid",):
                    set_hooks(own_api, "e2e", "auth", [session_hook(script, f"outlive-{n}")])
                    pidfile = tmp_path / f"{n}-{how}.pids"
                    assert send(own, **{"x-escape": how, "x-pidfile": str(pidfile)}).status_code == 200
                    pids += recorded(pidfile)
            assert not any(gone(pid) for pid in pids)
    finally:
        own.stop()
    assert own.proc.returncode == 0, own.output()
    wait_for(lambda: all(gone(pid) for pid in pids), 10, f"what the sessions left behind ({pids}) to be gone")


# --- the file that runs is the file that was checked ---


class Swapper:
    """Swaps `link` between a copy of `inside` and a symlink to `outside`, as fast as it can,
    each swap an atomic rename (the name always exists)."""

    def __init__(self, link: Path, inside: Path, outside: Path) -> None:
        self.link, self.inside, self.outside = link, inside, outside
        self.stop = threading.Event()
        self.swaps = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        spare = self.link.with_name(self.link.name + ".new")
        while not self.stop.is_set():
            spare.unlink(missing_ok=True)
            if self.swaps % 2:
                spare.symlink_to(self.outside)
            else:
                shutil.copyfile(self.inside, spare)
            os.replace(spare, self.link)
            self.swaps += 1

    def __enter__(self) -> Swapper:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        shutil.copyfile(self.inside, self.link.with_name(self.link.name + ".new"))
        os.replace(self.link.with_name(self.link.name + ".new"), self.link)  # valid again


def race(proxy: Mitmdump, script: str, swapper: Swapper) -> dict[str, int]:
    """RACE_REQUESTS requests while the script is swapped; what answered them, counted."""
    reason = f"script {script} resolves outside the scripts folder"
    counts: dict[str, int] = {}

    def one(_: int) -> str:
        response = send(proxy)
        if OUTSIDE_MARK in response.text or response.status_code == 299:
            return "outside"
        if response.status_code == 200 and "INSIDE" in response.text:
            return "inside"
        if response.status_code == 502 and response.json()["reason"] == reason:
            return "refused"
        return f"other {response.status_code}: {response.text[:200]}"

    with swapper, ThreadPoolExecutor(4) as pool:
        for kind in pool.map(one, range(RACE_REQUESTS)):
            counts[kind] = counts.get(kind, 0) + 1
    assert swapper.swaps > RACE_REQUESTS  # it really was swapping all along
    return counts


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the scripts folder, with scripts that say they ran."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "evil.py").write_text(
        'import json, sys\njson.load(sys.stdin)\nprint(json.dumps({"response": {"status": 299, '
        f'"body": "{OUTSIDE_MARK}"}}}}))\n'
    )
    (folder / "evil_session.py").write_text(
        f'def handle(event):\n    return {{"response": {{"status": 299, "body": "{OUTSIDE_MARK}"}}}}\n'
    )
    return folder


def test_a_script_swapped_for_an_outside_symlink_never_runs_the_outside_file(
    proxy: Mitmdump, api: httpx.Client, home: Path, outside: Path
) -> None:
    folder = home / "scripts" / "race"
    folder.mkdir(exist_ok=True)
    inside = folder / "inside.py"
    inside.write_text(
        'import json, sys\njson.load(sys.stdin)\nprint(json.dumps({"response": {"status": 200, '
        '"body": "INSIDE"}}))\n'
    )
    link = folder / "current.py"
    shutil.copyfile(inside, link)
    set_hooks(api, "e2e", "auth", [hook("/**", "/race/current.py", timeout=10_000)])
    counts = race(proxy, "/race/current.py", Swapper(link, inside, outside / "evil.py"))
    assert set(counts) <= {"inside", "refused"}, counts
    assert counts.get("inside") and counts.get("refused"), counts  # both really happened


def test_an_exec_session_never_loads_a_swapped_in_outside_file(
    proxy: Mitmdump, api: httpx.Client, home: Path, outside: Path
) -> None:
    folder = home / "scripts" / "race"
    folder.mkdir(exist_ok=True)
    inside = folder / "inside_session.py"
    inside.write_text('def handle(event):\n    return {"response": {"status": 200, "body": "INSIDE"}}\n')
    link = folder / "current_session.py"
    shutil.copyfile(inside, link)
    set_hooks(api, "e2e", "auth", [session_hook("/race/current_session.py", "race")])
    counts = race(proxy, "/race/current_session.py", Swapper(link, inside, outside / "evil_session.py"))
    assert set(counts) <= {"inside", "refused"}, counts
    assert counts.get("inside") and counts.get("refused"), counts


def test_an_exec_session_script_swapped_after_a_run_is_refused_on_the_next(
    proxy: Mitmdump, api: httpx.Client, home: Path, outside: Path
) -> None:
    """The proxy remembers exec-session scripts it found inside the folder; a script replaced
    by a symlink to a file outside is another file, and refused, however well the old one ran."""
    script = home / "scripts" / "swapped_session.py"
    script.write_text('def handle(event):\n    return {"response": {"status": 200, "body": "INSIDE"}}\n')
    set_hooks(api, "e2e", "auth", [session_hook("/swapped_session.py", f"swap-{uuid.uuid4().hex[:8]}")])
    first = send(proxy)
    assert first.status_code == 200 and first.text == "INSIDE"
    spare = script.with_name("swapped_session.py.new")
    spare.symlink_to(outside / "evil_session.py")
    os.replace(spare, script)
    try:
        second = send(proxy)
    finally:
        script.unlink()
    assert OUTSIDE_MARK not in second.text
    assert second.status_code == 502
    assert second.json()["reason"] == "script /swapped_session.py resolves outside the scripts folder"


def test_a_remembered_session_script_is_looked_at_again_once_it_changes(
    tmp_path: Path, outside: Path
) -> None:
    """`session_script` on its own (the worker's own check behind it aside): found inside once,
    then swapped for a symlink to a file outside, it is refused, not taken from memory."""
    root = tmp_path / "scripts"
    root.mkdir()
    (root / "s.py").write_text("def handle(event):\n    return None\n")
    checked: dict[str, tuple[int, int, int, int]] = {}
    found = session_script(root, "/s.py", checked)
    assert not isinstance(found, Verdict) and "/s.py" in checked
    (root / "s.py.new").symlink_to(outside / "evil_session.py")
    os.replace(root / "s.py.new", root / "s.py")
    refused = session_script(root, "/s.py", checked)
    assert isinstance(refused, Verdict) and refused.outcome == "failed"
    assert refused.reason == "script /s.py resolves outside the scripts folder"


def test_an_outside_symlink_is_a_failed_run_naming_the_reason(
    proxy: Mitmdump, api: httpx.Client, home: Path, outside: Path
) -> None:
    planted = home / "scripts" / "planted.py"
    planted.unlink(missing_ok=True)
    planted.write_text("")  # a harmless file when the hook is written (the API checks it is there)
    set_hooks(api, "e2e", "auth", [hook("/**", "/planted.py")])
    planted.unlink()
    planted.symlink_to(outside / "evil.py")
    try:
        response = send(proxy)
    finally:
        (home / "scripts" / "planted.py").unlink()  # the hooks file is valid again
    assert response.status_code == 502
    assert response.json()["reason"] == "script /planted.py resolves outside the scripts folder"


def test_scripts_beside_each_other_still_import_and_find_their_folder(
    proxy: Mitmdump, api: httpx.Client, home: Path
) -> None:
    """Run from the open file, a script still sees its real path and folder: python imports a
    helper beside it, node requires one, bash finds its folder from $0."""
    folder = home / "scripts" / "nested"
    folder.mkdir(exist_ok=True)
    (folder / "helper.py").write_text('ANSWER = {"response": {"status": 200, "body": "helped"}}\n')
    (folder / "main.py").write_text(
        "import json, sys\nimport helper\njson.load(sys.stdin)\nprint(json.dumps(helper.ANSWER))\n"
    )
    (folder / "helper.js").write_text('exports.answer = { response: { status: 200, body: "helped" } };\n')
    (folder / "main.js").write_text('process.stdout.write(JSON.stringify(require("./helper").answer));\n')
    (folder / "helper.txt").write_text("helped\n")
    (folder / "main.sh").write_text(
        'cat >/dev/null\nhelped=$(cat "$(dirname "$0")/helper.txt")\n'
        'echo "{\\"response\\": {\\"status\\": 200, \\"body\\": \\"$helped\\"}}"\n'
    )
    mains = ["main.py", "main.sh"] + (["main.js"] if shutil.which("node") else [])
    for main in mains:
        set_hooks(api, "e2e", "auth", [hook("/**", f"/nested/{main}")])
        response = send(proxy)
        assert (response.status_code, response.text) == (200, "helped"), main


def test_per_run_scripts_get_only_the_minimal_environment(proxy: Mitmdump, api: httpx.Client) -> None:
    """The spawner (and its supervisors) hand down exactly the proxy's minimal environment."""
    set_hooks(api, "e2e", "auth", [hook("/**", "/act.py")])
    env = send(proxy, **{"x-act": "env"}).json()
    assert env == minimal_env()


# --- hooks_script_user ---


def test_an_unknown_script_user_is_an_options_error() -> None:
    addon = ProxyHooks()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError, match="no such user"):
        tctx.configure(addon, hooks_script_user="no-such-user-here")


def test_root_without_a_script_user_is_warned_about(proxy: Mitmdump) -> None:
    if os.geteuid() != 0:
        pytest.skip("the warning is about running as root")
    assert "hook scripts would too; set hooks_script_user" in proxy.output()


@needs_root
def test_hooks_run_as_the_script_user(upstream: Upstream) -> None:
    nobody = pwd.getpwnam("nobody")
    # Somewhere that user can read: not under a root-only temporary folder.
    folder = Path(tempfile.mkdtemp(prefix="proxy-hooks-user-"))
    try:
        folder.chmod(0o755)
        shutil.copytree(Path(__file__).parent / "scripts", folder / "scripts")
        for path in [folder / "scripts", *(folder / "scripts").iterdir()]:
            path.chmod(0o755)
        from tests.harness import container_doc, write_json

        write_json(folder / "e2e.json", container_doc(upstream))
        own = Mitmdump(folder / "e2e.json", folder / "confdir", "--set", "hooks_script_user=nobody")
        try:
            assert "hook scripts would too" not in own.output()
            with own.api() as own_api:
                expected = {"uid": nobody.pw_uid, "gid": nobody.pw_gid, "groups": str(nobody.pw_gid)}
                set_hooks(own_api, "e2e", "auth", [hook("/**", "/whoami.sh")])
                assert send(own).json() == expected
                if shutil.which("node"):
                    set_hooks(own_api, "e2e", "auth", [session_hook("/whoami_session.js", "user")])
                    assert send(own).json() == expected
        finally:
            own.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
