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
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import annotated_types
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from addon.model import RESERVED_SERVICES, HookId, HooksFile, HookSpec, ScriptPath, reserved_service

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
        elif part != "[key]":  # pydantic's marker for a dict key: the reason names it instead
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


def _bounds(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[Any, Any] | None:
    """Both ends of a field's range (`Field(ge=1, le=500)`), to say `must be 1-500` at once."""
    owner = _model_at(model, loc[:-1]) if loc else None
    field = owner.model_fields.get(str(loc[-1])) if owner is not None else None
    if field is None:
        return None
    metadata = list(field.metadata)
    for member in typing.get_args(field.annotation):  # `Annotated[int, Field(ge=…)] | None`
        if typing.get_origin(member) is typing.Annotated:
            for extra in typing.get_args(member)[1:]:
                metadata += getattr(extra, "metadata", [extra])
    low = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
    return None if low is None or high is None else (low, high)


def shown(value: Any) -> str:
    """A value from outside, as a message quotes it: short, and in JSON's words for its type."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:80] + "…")
    return str(value)


@dataclass(frozen=True, slots=True)
class _Error:
    """One pydantic error, as the table below reads it."""

    ctx: dict[str, Any]
    got: str  # the input, shown
    length: int | None  # of a string input


_ANY_TIME = "an ISO 8601 time such as 2026-01-31T12:00:00Z"

# Every pydantic error type our models can raise, in our words, with what to write instead.
# (value_error, extra_forbidden and the ranges need more than one error: see `_reason`.)
_REASONS: dict[str, Callable[[_Error], str]] = {
    "missing": lambda e: "required field is missing",
    "int_type": lambda e: f"must be an integer, got {e.got}",
    "int_parsing": lambda e: f"must be an integer, got {e.got}",
    "int_from_float": lambda e: f"must be a whole number, got {e.got}",
    "int_parsing_size": lambda e: f"is too large a number, got {e.got}",
    "float_type": lambda e: f"must be a number, got {e.got}",
    "float_parsing": lambda e: f"must be a number, got {e.got}",
    "finite_number": lambda e: f"must be a finite number, got {e.got}",
    "bool_type": lambda e: f"must be true or false, got {e.got}",
    "bool_parsing": lambda e: f"must be true or false, got {e.got}",
    "string_type": lambda e: f"must be a string, got {e.got}",
    "string_unicode": lambda e: "must be valid Unicode text",
    "string_too_short": lambda e: (
        "must not be empty"
        if e.ctx["min_length"] == 1
        else f"must be at least {e.ctx['min_length']} characters long, got {e.length}"
    ),
    "string_too_long": lambda e: f"must be at most {e.ctx['max_length']} characters long, got {e.length}",
    "string_pattern_mismatch": lambda e: f"must match the pattern {e.ctx['pattern']}, got {e.got}",
    "too_short": lambda e: (
        f"must have at least {e.ctx['min_length']} "
        f"{'entry' if e.ctx['min_length'] == 1 else 'entries'}, got {e.ctx['actual_length']}"
    ),
    "too_long": lambda e: f"must have at most {e.ctx['max_length']} entries, got {e.ctx['actual_length']}",
    "greater_than_equal": lambda e: f"must be at least {e.ctx['ge']}, got {e.got}",
    "greater_than": lambda e: f"must be greater than {e.ctx['gt']}, got {e.got}",
    "less_than_equal": lambda e: f"must be at most {e.ctx['le']}, got {e.got}",
    "less_than": lambda e: f"must be less than {e.ctx['lt']}, got {e.got}",
    "literal_error": lambda e: f"must be {e.ctx['expected']}, got {e.got}",
    "enum": lambda e: f"must be {e.ctx['expected']}, got {e.got}",
    "dict_type": lambda e: f"must be a JSON object, got {e.got}",
    "model_type": lambda e: f"must be a JSON object, got {e.got}",
    "model_attributes_type": lambda e: f"must be a JSON object, got {e.got}",
    "list_type": lambda e: f"must be a list, got {e.got}",
    "datetime_type": lambda e: f"must be {_ANY_TIME}, got {e.got}",
    "datetime_parsing": lambda e: f"must be {_ANY_TIME}, got {e.got}",
    "datetime_from_date_parsing": lambda e: f"must be {_ANY_TIME}, got {e.got}",
    "datetime_object_invalid": lambda e: f"must be {_ANY_TIME}, got {e.got}",
    "json_invalid": lambda e: f"malformed JSON: {e.ctx.get('error', '')}",
}


def _reason(error: ErrorDetails, model: type[BaseModel]) -> str:
    kind, loc, value = error["type"], error["loc"], error.get("input")
    ctx = dict(error.get("ctx") or {})
    if kind in ("value_error", "assertion_error"):
        reason = str(ctx["error"])
        return f"name {reason}" if loc and loc[-1] == "[key]" else reason
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        allowed = f" (allowed: {', '.join(owner.model_fields)})" if owner else ""
        return f"unknown field{allowed}"
    if kind in ("greater_than_equal", "less_than_equal") and (bounds := _bounds(model, loc)):
        return f"must be {bounds[0]}-{bounds[1]}, got {shown(value)}"
    words = _REASONS.get(kind)
    if words is None:  # a type no model of ours raised before: still no pydantic prose
        return f"is not a valid value here, got {shown(value)}"
    return words(_Error(ctx, shown(value), len(value) if isinstance(value, str) else None))


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


def check_model(model: type[M], data: dict[str, Any]) -> tuple[M | None, list[Problem]]:
    """`validate` that hands back its problems instead of raising, so the rules that need more
    than one field can be checked too and everything reported at once."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from(exc, model)


def parse_model(model: type[M], raw: bytes | str) -> M:
    """Parse JSON into `model`, raising InvalidInput with every problem (JSON syntax included)."""
    return validate(model, json_object(raw))


def in_order(problems: Iterable[Problem]) -> list[Problem]:
    """Problems sorted by where they are (`hooks.auth[2]` before `hooks.auth[10]`), so those of
    one hook or field come together whichever check found them."""

    def key(problem: Problem) -> list[tuple[int, int | str]]:
        return [(0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(problem.field)]

    return sorted(problems, key=key)


_DIGITS = re.compile(r"(\d+)")


def problem_lines(path: Path, problems: Iterable[Problem]) -> list[str]:
    """`file: field.path: reason`, one line per problem: how the CLI and the log say them."""
    return [f"{path}: {problem}" for problem in problems]


# --- the rules that need more than one field ---
#
# They read the JSON leniently (`HookRefs.read`, `FileRefs.read`): a value of the wrong shape is
# left out, since pydantic reports it already, and the rest is still checked. So a hook with a bad
# timeout *and* an undefined group gets both problems in one pass. A valid model gives the same
# view through `HookRefs.of` / `FileRefs.of`.

_SCRIPT_PATH: TypeAdapter[str] = TypeAdapter(ScriptPath)
_HOOK_ID: TypeAdapter[str] = TypeAdapter(HookId)


def _valid(adapter: TypeAdapter[str], value: object) -> str | None:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class HookRefs:
    """What one hook refers to elsewhere: its id (unique), its groups (defined), its script
    (inside the scripts folder; deployed). None or left out where the value is unusable."""

    id: str | None = None
    groups: tuple[str | None, ...] = ()  # applies_to.groups; None where an entry is not a string
    script: str | None = None  # script.path, when it passes the model's own rules
    exec_id: str | None = None

    @classmethod
    def read(cls, raw: object) -> HookRefs:
        hook = _object(raw)
        groups = _object(hook.get("applies_to")).get("groups")
        script = _object(hook.get("script"))
        exec_id = script.get("execId")
        return cls(
            _valid(_HOOK_ID, hook.get("id")),
            tuple(g if isinstance(g, str) else None for g in groups) if isinstance(groups, list) else (),
            _valid(_SCRIPT_PATH, script.get("path")),
            exec_id if isinstance(exec_id, str) and exec_id else None,
        )

    @classmethod
    def of(cls, hook: HookSpec) -> HookRefs:
        groups = tuple(hook.applies_to.groups) if hook.applies_to else ()
        return cls(getattr(hook, "id", None), groups, hook.script.path, hook.script.execId)


@dataclass(frozen=True, slots=True)
class FileRefs:
    """What a hooks file's cross-references need: the names it defines and each hook's refs."""

    container: str | None
    scripts_dir: str | None
    services: tuple[str, ...]
    groups: tuple[str, ...]
    hooks: tuple[tuple[str, tuple[HookRefs, ...]], ...]  # by service, in list order

    @classmethod
    def read(cls, document: dict[str, Any]) -> FileRefs:
        container = document.get("container")
        scripts_dir = document.get("scripts_dir", "scripts")
        hooks = _object(document.get("hooks"))
        return cls(
            container if isinstance(container, str) else None,
            scripts_dir if isinstance(scripts_dir, str) and scripts_dir else None,
            tuple(_object(document.get("services"))),
            tuple(_object(document.get("groups"))),
            tuple(
                (service, tuple(map(HookRefs.read, items)) if isinstance(items, list) else ())
                for service, items in hooks.items()
            ),
        )

    @classmethod
    def of(cls, hooks_file: HooksFile) -> FileRefs:
        return cls(
            hooks_file.container,
            hooks_file.scripts_dir,
            tuple(hooks_file.services),
            tuple(hooks_file.groups),
            tuple((service, tuple(map(HookRefs.of, hooks))) for service, hooks in hooks_file.hooks.items()),
        )

    def hookable(self) -> Iterator[tuple[str, int, HookRefs]]:
        """(service, position, refs) of every hook outside the reject-listed services."""
        for service, hooks in self.hooks:
            if service not in RESERVED_SERVICES:
                for position, hook in enumerate(hooks):
                    yield service, position, hook


def hook_problems(
    hook: HookRefs,
    container: str | None,
    groups: Collection[str],
    scripts_root: Path | None,
    inside: dict[str, bool] | None = None,
) -> list[Problem]:
    """What a hook refers to that the container must have: its groups and its script's folder.

    `inside` memoises the symlink check per script path within one whole-file check (hooks
    often share scripts, and resolving a path costs a stat per component).
    """
    problems: list[Problem] = []
    for index, group in enumerate(hook.groups):
        if group is not None and group not in groups:
            defined = ", ".join(sorted(groups)) or "none"
            where = f" in container {container!r}" if container else ""
            problems.append(
                Problem(
                    f"applies_to.groups[{index}]",
                    f"group {group!r} is not defined{where} (defined: {defined}); "
                    "add it under 'groups' first",
                )
            )
    if scripts_root is not None and hook.script is not None:
        if inside is None:
            inside = {}
        path = hook.script
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


def reserved_hooks(service: str, count: int) -> str:
    return (
        f"{reserved_service(service)}: it may be declared under 'services', but it never has hooks "
        f"(its flows pass untouched); remove the {count} hook{'s' if count != 1 else ''} listed here"
    )


def file_problems(refs: FileRefs, scripts_root: Path | None) -> list[Problem]:
    """Whole-file rules: hooks only for defined, hookable services; refs; unique ids."""
    problems: list[Problem] = []
    for service, hooks in refs.hooks:
        if service in RESERVED_SERVICES:
            if hooks:
                problems.append(Problem(f"hooks.{service}", reserved_hooks(service, len(hooks))))
        elif service not in refs.services:
            defined = ", ".join(sorted(refs.services)) or "none"
            problems.append(
                Problem(
                    f"hooks.{service}",
                    f"service {service!r} is not defined under 'services' (defined: {defined})",
                )
            )
    inside: dict[str, bool] = {}
    ids: list[tuple[str, str | None]] = []
    for service, position, hook in refs.hookable():
        where = f"hooks.{service}[{position}]"
        found = hook_problems(hook, refs.container, refs.groups, scripts_root, inside)
        problems.extend(p.under(where) for p in found)
        ids.append((where, hook.id))
    return problems + duplicate_ids(ids)


def duplicate_ids(hooks: Iterable[tuple[str, str | None]]) -> list[Problem]:
    """Each hook id at most once: `hooks` are (where, id) in order; the second of a pair is
    the problem."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for where, hook_id in hooks:
        if hook_id is not None:
            if hook_id in seen:
                problems.append(Problem(f"{where}.id", f"duplicate of {seen[hook_id]}.id"))
            seen.setdefault(hook_id, where)
    return problems


def scripts_root_of(hooks_path: Path, scripts_dir: str) -> Path:
    return (hooks_path.parent / scripts_dir).absolute()


@dataclass(frozen=True)
class FileReport:
    """Everything one look at a hooks file found: the model (None unless every field is valid),
    its references, every problem in field order, and its scripts folder (None if unreadable)."""

    hooks_file: HooksFile | None
    refs: FileRefs
    problems: list[Problem]
    scripts_root: Path | None


def inspect_hooks_file(path: Path, document: dict[str, Any]) -> FileReport:
    """Check one hooks file's JSON document: pydantic's field rules and the whole-file rules,
    side by side."""
    hooks_file, problems = check_model(HooksFile, document)
    # From the model when there is one (the same references, read three times faster).
    refs = FileRefs.read(document) if hooks_file is None else FileRefs.of(hooks_file)
    root = None if refs.scripts_dir is None else scripts_root_of(path, refs.scripts_dir)
    return FileReport(hooks_file, refs, in_order(problems + file_problems(refs, root)), root)


def load_hooks_file(path: Path, document: dict[str, Any]) -> HooksFile:
    """Fully check one hooks file's JSON document; InvalidInput lists every problem found."""
    report = inspect_hooks_file(path, document)
    if report.problems or report.hooks_file is None:
        raise InvalidInput(report.problems)
    return report.hooks_file
