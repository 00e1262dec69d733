"""proxy-hooks: the hooks-file domain and (later) the mitmproxy addon that enforces it.

Domain modules (model, validation, store, edits, containers) import neither aiohttp nor
mitmproxy, so the control API and the offline tools can use them alone.
"""
