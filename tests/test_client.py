"""The Python client against a real API process: the If-Match dance, retries with a merge,
errors as exceptions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_api.client import ApiError, ProxyHooksClient
from tests.conftest import ApiProcess, demo, write_container, write_scripts

NEW = {"match": {"method": "GET", "path": "/c"}, "script": {"path": "/c.py"}}


@pytest.fixture
def api_url(tmp_path: Path) -> Iterator[str]:
    path = write_container(tmp_path / "demo.json", demo(hooks={"auth": [], "billing": []}))
    write_scripts(tmp_path / "scripts", "/c.py")
    process = ApiProcess(path)
    yield process.url
    process.stop()


async def test_crud_without_handling_etags(api_url: str) -> None:
    async with ProxyHooksClient(api_url) as api:
        created = await api.create_hook("demo", "auth", NEW)
        first = await api.create_hook("demo", "auth", {**NEW, "description": "first"}, position=0)
        hooks, etag = await api.service_hooks("demo", "auth")
        assert [h["id"] for h in hooks] == [first["id"], created["id"]] and etag == "file:v3"
        await api.move_hook("demo", "auth", first["id"], 1)
        replaced = await api.replace_hook("demo", "auth", created["id"], {**NEW, "timeout": 100})
        assert replaced["timeout"] == 100 and replaced["position"] == 0
        assert (await api.get_hook("demo", "auth", first["id"]))["description"] == "first"
        await api.delete_hook("demo", "auth", first["id"])
        assert await api.clear_hooks("demo", "auth") == 1
        assert await api.list_hooks("demo") == {"auth": [], "billing": []}


async def test_errors_are_exceptions_with_code_details_and_etag(api_url: str) -> None:
    async with ProxyHooksClient(api_url) as api:
        with pytest.raises(ApiError) as missing:
            await api.get_hook("demo", "auth", "01hz8x9k2b3c4d5e6f7g8h9j0m")
        assert missing.value.status == 404 and missing.value.code == "NOT_FOUND"
        with pytest.raises(ApiError) as invalid:
            await api.create_hook("demo", "auth", {**NEW, "timeout": 0})
        assert invalid.value.code == "VALIDATION_ERROR" and invalid.value.details[0]["field"] == "timeout"
        with pytest.raises(ApiError) as stale:
            await api.create_hook("demo", "auth", NEW, etag="file:v0")
        assert stale.value.status == 412 and stale.value.etag == "file:v1"


async def test_concurrent_merges_retry_and_lose_nothing(api_url: str) -> None:
    async def add(n: int) -> None:
        async with ProxyHooksClient(api_url) as api:
            await api.update_hooks(
                "demo", "billing", lambda hooks: [*hooks, {**NEW, "description": f"n{n}"}], attempts=50
            )

    await asyncio.gather(*(add(n) for n in range(10)))
    async with ProxyHooksClient(api_url) as api:
        hooks, etag = await api.service_hooks("demo", "billing")
    assert sorted(h["description"] for h in hooks) == sorted(f"n{n}" for n in range(10))
    assert etag == "file:v11"
