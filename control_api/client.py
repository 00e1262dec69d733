"""A small async client for the control API, for scripts, CI and our own tests.

It does the If-Match dance for you: a write without an ETag fetches the current one first, and
`update_hooks` re-reads, re-applies your merge and retries when another writer got in first
(412), like the seed's TypeScript SDK.

    async with ProxyHooksClient("http://127.0.0.1:8082") as api:
        hook = await api.create_hook("demo", "auth", {"match": {...}, "script": {...}})
        await api.update_hooks("demo", "auth", lambda hooks: [h for h in hooks if h["enabled"]])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import aiohttp

Hook = dict[str, Any]
# A container's hooks by service, in evaluation order.
ServiceHooksMap = dict[str, list[Hook]]


class ApiError(Exception):
    """An error envelope: `status`, `code` (NOT_FOUND, PRECONDITION_FAILED, …), `details`."""

    def __init__(self, status: int, body: Mapping[str, Any], etag: str | None):
        self.status = status
        self.code: str | None = body.get("code")
        self.message: str = str(body.get("message", ""))
        self.details: list[dict[str, str]] = list(body.get("details") or [])
        self.etag = etag  # the container's current ETag, when the answer carried one
        super().__init__(f"{status} {self.code}: {self.message}" + "".join(
            f"\n  {d['field']}: {d['reason']}" for d in self.details
        ))  # fmt: skip


class ProxyHooksClient:
    def __init__(self, base_url: str, token: str | None = None, session: aiohttp.ClientSession | None = None):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> ProxyHooksClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        json: Any = None,
        etag: str | None = None,
        params: Any = None,
    ) -> tuple[dict[str, Any], str | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = dict(self._headers)
        if etag is not None:
            headers["If-Match"] = etag
        async with self._session.request(
            method, self.base_url + path, json=json, headers=headers, params=params
        ) as response:
            body = await response.json(content_type=None)
            if response.status >= 400:
                raise ApiError(response.status, body, response.headers.get("ETag"))
            return body["data"], response.headers.get("ETag")

    @staticmethod
    def _hooks(container: str, service: str | None = None, hook_id: str | None = None) -> str:
        path = f"/api/v1/containers/{container}/proxy/hooks"
        return path + "".join(f"/{part}" for part in (service, hook_id) if part)

    async def _etag(self, container: str) -> str:
        _, etag = await self._request("GET", self._hooks(container))
        assert etag is not None
        return etag

    # --- reads ---

    async def list_containers(self) -> list[str]:
        """The ids of the containers the API serves."""
        data, _ = await self._request("GET", "/api/v1/containers")
        return [str(container["id"]) for container in data["containers"]]

    async def get_container(self, container: str) -> tuple[dict[str, Any], str]:
        """The whole container as its hooks file holds it (`GET /api/v1/containers/{id}`:
        container, file_version, scripts_dir, services, groups, environments with `from_env`
        references, hooks as listed), and the ETag it was read at."""
        data, etag = await self._request("GET", f"/api/v1/containers/{container}")
        assert etag is not None
        return dict(data), etag

    async def list_hooks(self, container: str) -> ServiceHooksMap:
        return (await self.container_hooks(container))[0]

    async def container_hooks(self, container: str) -> tuple[ServiceHooksMap, str]:
        """Every service's hooks in evaluation order, and the ETag they were read at."""
        data, etag = await self._request("GET", self._hooks(container))
        assert etag is not None
        return dict(data["hooks"]), etag

    async def service_hooks(self, container: str, service: str) -> tuple[list[Hook], str]:
        """The service's hooks in evaluation order, and the ETag they were read at."""
        data, _ = await self._request("GET", self._hooks(container, service))
        return list(data["hooks"]), str(data["etag"])

    async def get_hook(self, container: str, service: str, hook_id: str) -> Hook:
        data, _ = await self._request("GET", self._hooks(container, service, hook_id))
        return dict(data["hook"])

    # --- writes: each takes an ETag, or fetches the current one ---

    async def create_hook(
        self, container: str, service: str, hook: Hook, position: int | None = None, etag: str | None = None
    ) -> Hook:
        body = hook if position is None else {**hook, "position": position}
        data, _ = await self._request(
            "POST", self._hooks(container, service), body, etag or await self._etag(container)
        )
        return dict(data["hook"])

    async def replace_hook(
        self, container: str, service: str, hook_id: str, hook: Hook, etag: str | None = None
    ) -> Hook:
        data, _ = await self._request(
            "PATCH", self._hooks(container, service, hook_id), hook, etag or await self._etag(container)
        )
        return dict(data["hook"])

    async def move_hook(
        self, container: str, service: str, hook_id: str, position: int, etag: str | None = None
    ) -> Hook:
        path = self._hooks(container, service, hook_id) + "/position"
        data, _ = await self._request(
            "PATCH", path, {"position": position}, etag or await self._etag(container)
        )
        return dict(data["hook"])

    async def delete_hook(self, container: str, service: str, hook_id: str, etag: str | None = None) -> str:
        data, _ = await self._request(
            "DELETE", self._hooks(container, service, hook_id), None, etag or await self._etag(container)
        )
        return str(data["etag"])

    async def clear_hooks(self, container: str, service: str, etag: str | None = None) -> int:
        data, _ = await self._request(
            "DELETE", self._hooks(container, service), None, etag or await self._etag(container)
        )
        return int(data["removed"])

    async def put_hooks(
        self, container: str, service: str, hooks: list[Hook], etag: str | None = None
    ) -> list[Hook]:
        data, _ = await self._request(
            "PUT", self._hooks(container, service), {"hooks": hooks}, etag or await self._etag(container)
        )
        return list(data["hooks"])

    async def apply_hooks(
        self, container: str, hooks: ServiceHooksMap, prune: bool = False, etag: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """Replace each listed service's hooks in one write (`PUT …/proxy/hooks`; with `prune`,
        the services left out end with none). The answer's `data` (per service: added, updated,
        removed, unchanged; the hooks as written) and the new ETag. A stale `etag` is a 412
        ApiError and writes nothing."""
        data, new_etag = await self._request(
            "PUT",
            self._hooks(container),
            {"hooks": hooks, "prune": prune},
            etag or await self._etag(container),
        )
        assert new_etag is not None
        return dict(data), new_etag

    async def upsert_hooks(
        self, container: str, items: list[dict[str, Any]], etag: str | None = None
    ) -> dict[str, Any]:
        """Seed 002's bulk upsert (`PATCH …/proxy/hooks`): each item `{"service", "hook"}`
        matched by the hook's id, else its name; all or none. `success`, `failed`, `results`."""
        data, _ = await self._request(
            "PATCH", self._hooks(container), {"items": items}, etag or await self._etag(container)
        )
        return dict(data)

    async def update_hooks(
        self,
        container: str,
        service: str,
        merge: Callable[[list[Hook]], list[Hook]],
        attempts: int = 10,
    ) -> list[Hook]:
        """Read the service's hooks, let `merge` return the new list, write it with If-Match;
        when someone else wrote in between (412), read again and merge again."""
        for _ in range(attempts):
            hooks, etag = await self.service_hooks(container, service)
            try:
                return await self.put_hooks(container, service, merge(hooks), etag)
            except ApiError as error:
                if error.status != 412:
                    raise
        raise ApiError(
            412,
            {"code": "PRECONDITION_FAILED", "message": f"still conflicting after {attempts} attempts"},
            None,
        )

    # --- events and debugging ---

    async def events(self, container: str, **filters: Any) -> tuple[list[dict[str, Any]], str | None]:
        data, _ = await self._request("GET", f"/api/v1/containers/{container}/proxy/events", params=filters)
        return list(data["events"]), data["next_cursor"]

    async def stats(self, container: str, period: str = "7d") -> dict[str, Any]:
        data, _ = await self._request(
            "GET", f"/api/v1/containers/{container}/proxy/stats", params={"period": period}
        )
        return dict(data)

    async def explain(self, container: str, **request: Any) -> dict[str, Any]:
        data, _ = await self._request("POST", f"/api/v1/containers/{container}/proxy/match", request)
        return dict(data)

    async def test_hook(self, container: str, service: str, hook_id: str, **sample: Any) -> dict[str, Any]:
        data, _ = await self._request("POST", self._hooks(container, service, hook_id) + "/test", sample)
        return dict(data)
