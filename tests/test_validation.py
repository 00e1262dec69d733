"""Problems in our words, all at once: pydantic's errors translated by one table, and the rules
that need more than one field read leniently so they run beside the field rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from addon.dry_run import DryRunRequest
from addon.events import EventQuery
from addon.explain import MatchQuery
from addon.model import HookCreate, HookList, HookMove, HookReplace, HooksFile
from addon.validation import (
    FileRefs,
    HookRefs,
    Problem,
    check_model,
    in_order,
    inspect_hooks_file,
)
from tests.conftest import DEMO, demo, write_container, write_scripts

# pydantic's own phrasing, which must never reach a user.
PYDANTIC_PROSE = ("Input should", "should have", "Field required", "Value error", "String should")

# Bodies that trip every kind of error our models raise (types, ranges, lengths, patterns,
# enums, times, unknown and missing fields), for each model that reads input from outside.
BAD_INPUTS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (
        HookCreate,
        {
            "match": {"method": 3, "path": 5, "headers": []},
            "script": {"path": "", "execId": "", "subdomain": "x" * 300},
            "timeout": "1",
            "enabled": "no",
            "failure_mode": 1,
            "mode": None,
            "position": -1,
            "applies_to": {"groups": "admins"},
            "colour": "red",
        },
    ),
    (HookReplace, {"match": [], "script": "x", "created_at": "tuesday", "position": 1.5}),
    (HookMove, {"position": "1"}),
    (HookList, {"hooks": {}}),
    (
        EventQuery,
        {
            "limit": "0",
            "blocked": "maybe",
            "since": "yesterday",
            "until": 5,
            "outcome": ["exploded"],
            "kind": ["x"],
            "cursor": "abc",
        },
    ),
    (EventQuery, {"limit": "abc"}),
    (MatchQuery, {"host": "", "path": "x", "client": {"address": 1}, "headers": {"a b": "c"}}),
    (
        DryRunRequest,
        {
            "method": "FETCH",
            "path": "x",
            "response": {"status": 99},
            "script_inline": {"language": "ruby", "source": 3},
            "script_override": "/a.py",
        },
    ),
    (HooksFile, {"container": "", "file_version": True, "services": [], "groups": {"g": []}, "hooks": 1}),
]


@pytest.mark.parametrize(("model", "data"), BAD_INPUTS, ids=[m.__name__ for m, _ in BAD_INPUTS])
def test_every_reason_is_in_our_words(model: type[BaseModel], data: dict[str, Any]) -> None:
    _, problems = check_model(model, data)
    assert problems
    for problem in problems:
        assert not any(prose in problem.reason for prose in PYDANTIC_PROSE), problem
        assert problem.reason and not problem.reason.startswith("is not a valid value here"), problem


def test_ranges_are_said_once_with_both_ends() -> None:
    _, problems = check_model(EventQuery, {"limit": "501"})
    assert problems == [Problem("limit", "must be 1-500, got '501'")]
    _, problems = check_model(DryRunRequest, {"response": {"status": 600}})
    assert problems == [Problem("response.status", "must be 100-599, got 600")]
    _, problems = check_model(HookMove, {"position": -1})
    assert problems == [Problem("position", "must be at least 0, got -1")]


def test_enums_list_what_is_allowed() -> None:
    _, problems = check_model(EventQuery, {"outcome": ["exploded"]})
    assert problems == [
        Problem(
            "outcome[0]",
            "must be 'continued', 'modified', 'responded', 'blocked', 'failed', 'timeout' or "
            "'observed', got 'exploded'",
        )
    ]


def test_a_bad_name_as_a_key_is_named_once() -> None:
    _, problems = check_model(HooksFile, demo(groups={"no spaces": {}}))
    assert [p.field for p in problems] == ["groups.no spaces"]
    assert problems[0].reason.startswith("name must be 1-63 characters")


def test_field_and_whole_file_rules_run_side_by_side(tmp_path: Path) -> None:
    """One hook with a field problem and a reference problem gets both."""
    bad_hook = {
        "id": DEMO["hooks"]["auth"][0]["id"],
        "match": {"method": "GET", "path": "/a"},
        "script": {"path": "/../x.py"},
        "timeout": 0,
        "applies_to": {"groups": ["ops", 7]},
    }
    fine_hook = {"match": {"method": "GET", "path": "/"}, "script": {"path": "/x.py"}}
    doc = demo(hooks={"auth": [DEMO["hooks"]["auth"][0], bad_hook], "mail": [], "logs": [fine_hook]})
    path = write_container(tmp_path / "demo.json", doc)
    report = inspect_hooks_file(path, doc)
    assert report.hooks_file is None
    assert [(p.field, p.reason.split(" (")[0].split(";")[0]) for p in report.problems] == [
        ("hooks.auth[1].applies_to.groups[0]", "group 'ops' is not defined in container 'demo'"),
        ("hooks.auth[1].applies_to.groups[1]", "must be a string, got 7"),
        ("hooks.auth[1].id", "duplicate of hooks.auth[0].id"),
        (
            "hooks.auth[1].script.path",
            "must stay inside the scripts folder: '..' is not allowed, got '/../x.py'",
        ),
        ("hooks.auth[1].timeout", "must be 1-30000 ms, got 0"),
        ("hooks.logs", "service 'logs' is reject-listed"),
        ("hooks.mail", "service 'mail' is not defined under 'services'"),
    ]


def test_reject_listed_services_may_be_declared(tmp_path: Path) -> None:
    services = {**DEMO["services"], "logs": {"hosts": ["logs.test"]}, "proxy": {}, "workspaces": {}}
    doc = demo(services=services, hooks={**DEMO["hooks"], "logs": []})
    path = write_container(tmp_path / "demo.json", doc)
    report = inspect_hooks_file(path, doc)
    assert report.problems == [] and report.hooks_file is not None
    assert set(report.hooks_file.services) >= {"logs", "proxy", "workspaces"}


def test_lenient_refs_match_the_models_own() -> None:
    """Read from JSON or from the validated model, a valid file gives the same references."""
    assert FileRefs.read(DEMO) == FileRefs.of(HooksFile.model_validate(DEMO))
    body = {key: value for key, value in DEMO["hooks"]["auth"][0].items() if key != "id"}
    assert HookRefs.read(body) == HookRefs.of(HookCreate.model_validate(body))


def test_lenient_refs_leave_out_what_is_unusable() -> None:
    refs = HookRefs.read(
        {"id": "BAD", "applies_to": {"groups": ["a", 1]}, "script": {"path": "../x", "execId": 3}}
    )
    assert refs == HookRefs(None, ("a", None), None, None)
    assert HookRefs.read("not a hook") == HookRefs()
    assert FileRefs.read({"hooks": {"auth": "x"}, "scripts_dir": ""}).hooks == (("auth", ()),)


def test_problems_come_in_field_order() -> None:
    problems = [Problem("hooks.a[10].x", "."), Problem("hooks.a[2].y", "."), Problem("hooks.a[2].b", ".")]
    assert [p.field for p in in_order(problems)] == ["hooks.a[2].b", "hooks.a[2].y", "hooks.a[10].x"]


def test_scripts_are_not_a_load_problem(tmp_path: Path) -> None:
    """A hand-written file whose scripts are not deployed still loads (the hooks fail closed);
    only `check` and the API's writes call that an error."""
    doc = demo(hooks={"auth": [{"match": {"method": "GET", "path": "/"}, "script": {"path": "/nope.py"}}]})
    path = write_container(tmp_path / "demo.json", doc)
    write_scripts(tmp_path / "scripts", "/unrelated.py")
    assert inspect_hooks_file(path, doc).problems == []
