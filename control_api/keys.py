"""Typed application state and per-request keys shared by the control API's modules."""

from __future__ import annotations

from aiohttp import web

from addon.containers import Containers
from addon.event_recorder import EventRecorder

CONTAINERS = web.AppKey("containers", Containers)
TOKEN = web.AppKey("token", str)
# Events: the recorder of this process (the addon's), or one that only reads the store (the
# standalone API). None: this process has no events store.
EVENTS = web.AppKey("events", EventRecorder)
# The ETag of the container a request is about; the envelope middleware stamps it on every
# response, errors included, so a client that got a 412 can retry with the ETag it was sent.
ETAG = "proxy_hooks.etag"
MAX_BODY_BYTES = 1024 * 1024
