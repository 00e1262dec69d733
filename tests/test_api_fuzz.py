"""Schemathesis against a real `proxy-hooks api`: every operation of the live OpenAPI document,
with generated (and deliberately invalid) parameters and bodies. The server must never answer
5xx (the events store is there, so not even 503), and every answer must be one the document
describes: a documented status code, its content type and its schema.

Bounded and reproducible: a few examples per operation, derandomized, no deadline. The scratch
container's only script answers at once, so dry runs cannot hang. Each operation starts from
that container, and afterwards its hooks file must still be valid, whatever the writes did.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from addon.containers import check
from control_api.app import API_ROUTES
from tests.conftest import DEMO, ApiProcess, reset_container
from tests.harness import wait_for

SEED_ID = "01hz8x9k2b3c4d5e6f7g8h9j0k"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 8


def _scratch() -> dict[str, Any]:
    doc = copy.deepcopy(DEMO)
    doc["hooks"]["auth"][0]["script"] = {"path": "/hooks/ok.sh"}
    return doc


def _reset(path: Path) -> Path:
    reset_container(path, _scratch())
    (path.parent / "scripts" / "hooks" / "ok.sh").write_text("exit 0\n")
    return path


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _reset(tmp_path_factory.mktemp("fuzz") / "demo.json")


@pytest.fixture
def fresh(fuzz_home: Path, fuzz_api: ApiProcess) -> Path:
    """Each operation starts from the scratch container (its hook still there to be fuzzed)."""
    _reset(fuzz_home)
    with fuzz_api.client() as http:
        wait_for(
            lambda: http.get("/api/v1/containers/demo/proxy/hooks").json()["data"]["hooks"]["auth"],
            10,
            "the API to read the reset file",
        )
    return fuzz_home


@pytest.fixture(scope="module")
def fuzz_api(fuzz_home: Path) -> Iterator[ApiProcess]:
    process = ApiProcess(fuzz_home)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_api: ApiProcess) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "base-url": fuzz_api.url,
            "dictionaries": {
                "containers": {"values": ["demo"]},
                "services": {"values": ["auth", "billing"]},
                "hooks": {"values": [SEED_ID]},
                "etags": {"values": ["*"]},
            },
            # Real resources most of the time, so the handlers behind the 404 are fuzzed too.
            "parameters": {
                "path.id": {"dictionary": "containers", "probability": 0.8},
                "path.service": {"dictionary": "services", "probability": 0.8},
                "path.hookId": {"dictionary": "hooks", "probability": 0.8},
                "header.If-Match": {"dictionary": "etags", "probability": 0.6},
            },
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(f"{fuzz_api.url}/api/v1/openapi.json", config=config)


def _operations() -> list[Any]:
    cases = []
    for route in API_ROUTES:
        op = route.operation
        methods = [route.method, "HEAD"] if route.method == "GET" else [route.method]
        for method in methods:
            if op.stream and method == "GET":
                continue  # a stream that is fine never ends; its 4xx are tested in test_events_e2e
            name = f"{method} {route.path}"
            cases.append(pytest.param(method, route.path, GenerationMode.POSITIVE, id=f"{name} positive"))
            if op.body or op.query or op.if_match or op.extra_params:  # something that can be invalid
                cases.append(pytest.param(method, route.path, GenerationMode.NEGATIVE, id=f"{name} negative"))
    return cases


@pytest.mark.parametrize(("method", "path", "mode"), _operations())
def test_no_5xx_and_every_answer_as_documented(
    api_schema: Any, fresh: Path, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    statuses: set[int] = set()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS, timeout=30)
        statuses.add(response.status_code)

    run()
    assert check(fresh).errors == [], "the hooks file is no longer valid"
    assert statuses, "no request was sent"
