"""`proxy-hooks apply` and `proxy-hooks export`: a container's hooks kept in a file (in git) and
applied from CI through the control API.

`apply` reads the file's `hooks`, diffs them against the server's (per service: added, edited
fields, moved, removed), prints the diff and, unless `--dry-run`, writes them with one
`PUT …/proxy/hooks` carrying the If-Match of the version it diffed against. If the server moved on
meanwhile (412) nothing is written and it prints what changed underneath. `export` writes the
whole container back as a hooks file (`GET /api/v1/containers/{id}`: services, groups,
environments with their `from_env` references, hooks), one `proxy-hooks check` accepts and a
proxy loads to enforce the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import ValidationError

from addon.model import HookReplace
from addon.versions import content
from control_api.client import ApiError, ProxyHooksClient, ServiceHooksMap

Hooks = ServiceHooksMap
# What the server sets: an exported file leaves out what it can recompute (position) and keeps
# what identifies the hook (id), so applying it back changes nothing.
_NOT_EXPORTED = ("position",)
# The hooks file's fields, in the order the file is written; `etag` is the API's, not the file's.
_FILE_FIELDS = ("container", "file_version", "scripts_dir", "services", "groups", "environments", "hooks")


def add_commands(commands: Any, token_env: str) -> None:
    app = commands.add_parser("apply", help="apply a hooks file to a container through the API")
    app.add_argument("file", type=Path, help="a hooks file (its `hooks`, by service, are applied)")
    app.add_argument("--api", required=True, help="the control API's URL, e.g. http://127.0.0.1:8081")
    app.add_argument("--container", default=None, help="the container id (default: the file's `container`)")
    app.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    app.add_argument("--prune", action="store_true", help="also empty the services the file leaves out")
    app.add_argument("--token", default=None, help=f"control API bearer token (default: ${token_env})")
    exp = commands.add_parser("export", help="write a container's hooks from the API as a hooks file")
    exp.add_argument("--api", required=True, help="the control API's URL, e.g. http://127.0.0.1:8081")
    exp.add_argument("--container", default=None, help="the container id (default: the only one served)")
    exp.add_argument("-o", "--output", type=Path, default=None, help="the file to write (default: stdout)")
    exp.add_argument("--token", default=None, help=f"control API bearer token (default: ${token_env})")


# --- the diff ---


def _label(hook: dict[str, Any]) -> str:
    name, hook_id = hook.get("name"), hook.get("id")
    given = hook.get("match")
    match: dict[str, Any] = given if isinstance(given, dict) else {}
    what = f"{match.get('method', '?')} {match.get('path', '?')}"
    return f"{name!r} ({hook_id or 'new'}, {what})" if name else f"{hook_id or 'new'} ({what})"


def _content(hook: dict[str, Any]) -> dict[str, Any]:
    return content(HookReplace.model_validate(hook))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def edited_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`field: old → new` for each field that differs, by dotted path."""
    before, after = _flat(_content(old)), _flat(_content(new))
    return [
        f"{field}: {json.dumps(before.get(field))} → {json.dumps(after.get(field))}"
        for field in sorted(set(before) | set(after))
        if before.get(field) != after.get(field)
    ]


@dataclass(frozen=True)
class Plan:
    """What applying `wanted` over `current` does, and the body that does it."""

    lines: list[str]
    body: Hooks

    @property
    def changes(self) -> bool:
        return any(line.startswith("  ") for line in self.lines)


def with_ids(current: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The file's hooks with the id of the server's hook of the same name filled in, so a hook
    kept in the file by name only is edited in place rather than replaced by a new one."""
    by_name = {h["name"]: h["id"] for h in current if h.get("name")}
    return [
        {**hook, "id": by_name[hook["name"]]} if "id" not in hook and hook.get("name") in by_name else hook
        for hook in wanted
    ]


def plan(current: Hooks, wanted: Hooks, prune: bool = False) -> Plan:
    lines: list[str] = []
    body: Hooks = {}
    services = list(wanted) + ([s for s in current if s not in wanted and current[s]] if prune else [])
    for service in services:
        now = current.get(service, [])
        hooks = with_ids(now, wanted.get(service, []))
        body[service] = hooks
        old = {h["id"]: (position, h) for position, h in enumerate(now)}
        kept = {h.get("id") for h in hooks}
        changes = []
        for position, hook in enumerate(hooks):
            found = old.get(hook.get("id", ""))
            if found is None:
                changes.append(f"  + add {_label(hook)} at {position}")
                continue
            was, before = found
            fields = edited_fields(before, hook)
            if was != position:
                changes.append(f"  ↕ move {_label(before)}: position {was} → {position}")
            if fields:
                changes.append(f"  ~ edit {_label(before)}: " + "; ".join(fields))
        changes += [f"  - remove {_label(h)}" for h in now if h["id"] not in kept]
        lines += [f"{service}:", *changes] if changes else [f"{service}: unchanged"]
    return Plan(lines, body)


# --- the commands ---


def _token(args: argparse.Namespace, token_env: str) -> str | None:
    return args.token or os.environ.get(token_env) or None


async def _apply(args: argparse.Namespace, token: str | None) -> int:
    try:
        document = json.loads(args.file.read_text())
        wanted = document["hooks"]
        container = args.container or document["container"]
        assert isinstance(wanted, dict) and isinstance(container, str)
        for hooks in wanted.values():
            for hook in hooks:
                HookReplace.model_validate(hook)
    except (OSError, ValueError, KeyError, AssertionError, AttributeError, TypeError) as exc:
        print(
            f"proxy-hooks apply: {args.file}: not a hooks file with `container` and `hooks`: {exc}",
            file=sys.stderr,
        )
        return 2
    async with ProxyHooksClient(args.api, token) as api:
        try:
            current, etag = await api.container_hooks(container)
            steps = plan(current, wanted, args.prune)
            print(f"container {container} at {etag}:")
            print("\n".join(steps.lines))
            if args.dry_run or not steps.changes:
                print("dry run: nothing written" if args.dry_run else "nothing to apply")
                return 0
            try:
                _, new_etag = await api.apply_hooks(container, steps.body, args.prune, etag)
            except ApiError as exc:
                if exc.status != 412:
                    raise
                moved, moved_etag = await api.container_hooks(container)
                print(
                    f"proxy-hooks apply: container {container} changed underneath ({etag} → {moved_etag}); "
                    "nothing written. What changed since the diff above:",
                    file=sys.stderr,
                )
                print("\n".join(plan(current, moved).lines), file=sys.stderr)
                return 1
            print(f"applied: {etag} → {new_etag}")
            return 0
        except (ApiError, aiohttp.ClientError, OSError, ValidationError) as exc:
            print(f"proxy-hooks apply: {exc}", file=sys.stderr)
            return 1


def hooks_file_of(document: dict[str, Any]) -> dict[str, Any]:
    """The container's document as the API shows it, as a hooks file: the file's fields in the
    file's order, hooks without what the server recomputes."""
    hooks = {
        service: [{k: v for k, v in hook.items() if k not in _NOT_EXPORTED} for hook in listed]
        for service, listed in document["hooks"].items()
    }
    return {field: document[field] for field in _FILE_FIELDS if field in document} | {"hooks": hooks}


async def _export(args: argparse.Namespace, token: str | None) -> int:
    async with ProxyHooksClient(args.api, token) as api:
        try:
            container = args.container
            if container is None:
                ids = await api.list_containers()
                if len(ids) != 1:
                    print(
                        f"proxy-hooks export: pick one with --container (served: {', '.join(ids)})",
                        file=sys.stderr,
                    )
                    return 2
                container = ids[0]
            document, etag = await api.get_container(container)
        except (ApiError, aiohttp.ClientError, OSError) as exc:
            print(f"proxy-hooks export: {exc}", file=sys.stderr)
            return 1
    text = json.dumps(hooks_file_of(document), indent=2)
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text + "\n")
        print(f"exported {container} at {etag} to {args.output}", file=sys.stderr)
    return 0


def run_apply(args: argparse.Namespace, token_env: str) -> int:
    return asyncio.run(_apply(args, _token(args, token_env)))


def run_export(args: argparse.Namespace, token_env: str) -> int:
    return asyncio.run(_export(args, _token(args, token_env)))
