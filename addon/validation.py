"""Problems with a hooks file or a request body, each with the field path and how to fix it.

pydantic checks one field at a time; the rules that need the whole file (a referenced group
must exist, ids are unique, scripts stay inside the scripts folder once symlinks are resolved)
are here, as plain functions returning lists, so `proxy-hooks check` can report every problem
at once instead of stopping at the first.
"""

from __future__ import annotations

import itertools
import json
import os
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from addon.model import RESERVED_SERVICES, Hook, HooksFile, HookSpec

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason

    def under(self, prefix: str) -> Problem:
        """The same problem, seen from an enclosing object (`hooks.auth[0]` + `.timeout`)."""
        if not self.field:
            return Problem(prefix, self.reason)
        sep = "" if self.field.startswith("[") else "."
        return Problem(f"{prefix}{sep}{self.field}", self.reason)


class InvalidInput(Exception):
    """Raised with every problem found; the API turns it into a 422 with `details`."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(map(str, self.problems)))


def field_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class found by walking `loc` from `model` (for the list of allowed fields)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:
            # A list index or dict key: step into the container's item type.
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[-1] if args else None
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0] if len(args) == 1 else None
        if typing.get_origin(current) is typing.Annotated:
            current = typing.get_args(current)[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _reason(error: Any, model: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        owner = _model_at(model, error["loc"][:-1])
        allowed = f" (allowed: {', '.join(owner.model_fields)})" if owner else ""
        return f"unknown field{allowed}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {json.dumps(error['input'])}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, got {json.dumps(error['input'])}"
    value = error.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f", got {value!r}"
    return f"{error['msg']}{shown}"


def problems_from(exc: ValidationError, model: type[BaseModel]) -> list[Problem]:
    return [Problem(field_path(e["loc"]), _reason(e, model)) for e in exc.errors()]


# How deep JSON from outside (API bodies, hooks files, script answers) may nest, the outer value
# being level 1: far beyond any real document, far below what json.loads, json.dumps and pydantic
# recurse into before a RecursionError (about 1000).
MAX_JSON_DEPTH = 64


class TooDeep(ValueError):
    """JSON nested deeper than the bound (or deep enough to exhaust the parser's recursion)."""


def nested_deeper_than(data: Any, limit: int) -> bool:
    """Whether `data` (decoded JSON) nests arrays and objects more than `limit` levels deep.

    Iterative, one level at a time, over containers only: a flat document costs a few steps."""
    level = [data] if type(data) is dict or type(data) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        children = itertools.chain.from_iterable(c.values() if type(c) is dict else c for c in level)
        level = [c for c in children if type(c) is dict or type(c) is list]
    return False


def loads_bounded(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """json.loads for untrusted text: TooDeep past `limit` levels, a RecursionError included;
    malformed JSON raises ValueError as json.loads does. The walk is skipped when the text has
    too few brackets to nest that deep (the usual document)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise TooDeep from None
    brackets = raw.count("[") + raw.count("{") if isinstance(raw, str) else raw.count(b"[") + raw.count(b"{")
    if brackets > limit and nested_deeper_than(data, limit):
        raise TooDeep
    return data


def json_object(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The one way JSON from outside (API bodies, hooks files) is parsed: a JSON object,
    nested at most `max_depth` levels, or InvalidInput saying what is wrong."""
    try:
        data = loads_bounded(raw, max_depth)
    except TooDeep:
        raise InvalidInput([Problem("body", f"nested deeper than {max_depth} levels")]) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput([Problem("body", f"malformed JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise InvalidInput([Problem("body", f"must be a JSON object, got {type(data).__name__}")])
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(problems_from(exc, model)) from None


def parse_model(model: type[M], raw: bytes | str) -> M:
    """Parse JSON into `model`, raising InvalidInput with every problem (JSON syntax included)."""
    return validate(model, json_object(raw))


def hook_problems(
    hook: HookSpec,
    hooks_file: HooksFile,
    scripts_root: Path | None,
    inside: dict[str, bool] | None = None,
) -> list[Problem]:
    """What a hook refers to that the container must have: its groups and its script's folder.

    `inside` memoises the symlink check per script path within one whole-file check (hooks
    often share scripts, and resolving a path costs a stat per component).
    """
    problems: list[Problem] = []
    if hook.applies_to:
        for index, group in enumerate(hook.applies_to.groups):
            if group not in hooks_file.groups:
                defined = ", ".join(sorted(hooks_file.groups)) or "none"
                problems.append(
                    Problem(
                        f"applies_to.groups[{index}]",
                        f"group {group!r} is not defined in container {hooks_file.container!r} "
                        f"(defined: {defined}); add it under 'groups' first",
                    )
                )
    if scripts_root is not None:
        if inside is None:
            inside = {}
        path = hook.script.path
        if path not in inside:
            inside[path] = script_inside(scripts_root, path)
        if not inside[path]:
            problems.append(
                Problem("script.path", f"resolves outside the scripts folder (a symlink?): {path!r}")
            )
    return problems


def resolve_script(scripts_root: Path, script_path: str) -> Path:
    return scripts_root / script_path.lstrip("/")


def script_inside(scripts_root: Path, script_path: str) -> bool:
    """For messages: where the path leads now. What runs is checked on the opened file
    (`addon.scripts.open_script`). A path changing while it is resolved (realpath's readlink
    of what was a symlink a moment before: EINVAL) is not inside."""
    try:
        real_root = os.path.realpath(scripts_root)
        real = os.path.realpath(resolve_script(scripts_root, script_path))
    except OSError:
        return False
    return real == real_root or real.startswith(real_root + os.sep)


def file_problems(hooks_file: HooksFile, scripts_root: Path | None) -> list[Problem]:
    """Whole-file rules: reserved names, hooks for undefined services, refs, unique ids."""
    problems: list[Problem] = []
    for name in hooks_file.services:
        if name in RESERVED_SERVICES:
            problems.append(
                Problem(
                    f"services.{name}",
                    f"{name!r} is reject-listed ({', '.join(sorted(RESERVED_SERVICES))}); rename it",
                )
            )
    seen_ids: dict[str, str] = {}
    inside: dict[str, bool] = {}
    for service, hooks in hooks_file.hooks.items():
        if service not in hooks_file.services:
            defined = ", ".join(sorted(hooks_file.services)) or "none"
            problems.append(
                Problem(
                    f"hooks.{service}",
                    f"service {service!r} is not defined under 'services' (defined: {defined})",
                )
            )
        for index, hook in enumerate(hooks):
            where = f"hooks.{service}[{index}]"
            problems.extend(p.under(where) for p in hook_problems(hook, hooks_file, scripts_root, inside))
            if hook.id is not None:
                if hook.id in seen_ids:
                    problems.append(Problem(f"{where}.id", f"duplicate of {seen_ids[hook.id]}.id"))
                seen_ids.setdefault(hook.id, where)
    return problems


def scripts_root_of(hooks_path: Path, hooks_file: HooksFile) -> Path:
    return (hooks_path.parent / hooks_file.scripts_dir).absolute()


def load_hooks_file(path: Path, document: dict[str, Any]) -> HooksFile:
    """Fully check one hooks file's JSON document; InvalidInput lists every problem found."""
    hooks_file = validate(HooksFile, document)
    problems = file_problems(hooks_file, scripts_root_of(path, hooks_file))
    if problems:
        raise InvalidInput(problems)
    return hooks_file


def new_hook_problems(hooks: Sequence[Hook]) -> list[Problem]:
    """Ids must be unique within one list written at once (bulk replace)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, hook in enumerate(hooks):
        if hook.id is not None:
            if hook.id in seen:
                problems.append(Problem(f"hooks[{index}].id", f"duplicate of hooks[{seen[hook.id]}].id"))
            seen.setdefault(hook.id, index)
    return problems
