"""Typed application state and per-request keys shared by the control API's modules."""

from __future__ import annotations

from aiohttp import web

from addon.containers import Containers
from addon.engine import Execution
from addon.event_recorder import EventRecorder
from addon.paths import EncodedSlashes
from addon.sessions import SessionPool
from control_api.hosts import HostPolicy
from control_api.operations import Route

CONTAINERS = web.AppKey("containers", Containers)
# Every route the app registers, with its operation: what the OpenAPI document describes.
ROUTE_TABLE: web.AppKey[tuple[Route, ...]] = web.AppKey("routes")
TOKEN = web.AppKey("token", str)
# The Host names (and Origins) requests may carry; see control_api.access.
HOST_POLICY = web.AppKey("host_policy", HostPolicy)
# Events: the recorder of this process (the addon's), or one that only reads the store (the
# standalone API). None: this process has no events store.
EVENTS = web.AppKey("events", EventRecorder)
# Whether a dry run may bring its own script source (hooks_allow_inline_scripts; off by default:
# the API must not become a way to run arbitrary code).
ALLOW_INLINE = web.AppKey("allow_inline_scripts", bool)
# How explain and dry runs read a path's %2F/%5C: as the proxy does (hooks_encoded_slashes).
ENCODED_SLASHES: web.AppKey[EncodedSlashes] = web.AppKey("encoded_slashes")
# How dry runs execute scripts: exec-session hooks get workers of the API's own (never the live
# traffic's, whose module state a dry run must not touch).
EXECUTION = web.AppKey("execution", Execution)
# The proxy's live exec sessions, for /healthz and the catalog; absent in a standalone API.
LIVE_SESSIONS = web.AppKey("live_sessions", SessionPool)
# The ETag of the container a request is about; the envelope middleware stamps it on every
# response, errors included, so a client that got a 412 can retry with the ETag it was sent.
ETAG = "proxy_hooks.etag"
MAX_BODY_BYTES = 1024 * 1024
