"""The file mitmproxy loads: `mitmdump -s "$(proxy-hooks addon-path)" --set hooks_config=PATH`.

A thin shim over the `addon` package, so mitmproxy's hot reload of this file stays cheap and
everything else is importable and testable on its own.

It is also the one file a mitmproxy without proxy-hooks can be pointed at, so it imports nothing
of ours or of our dependencies before it knows they are there. When they are not, it logs one
error line saying what to install into which Python and adds no addon: mitmdump exits on an error
logged while it starts. (Raising instead would show mitmproxy's traceback of the import.)
"""

import logging
import sys
from pathlib import Path
from typing import Any

# A clone of the repository: this file is <clone>/addon/proxy_hooks.py.
_CLONE = Path(__file__).resolve().parent.parent
_OUR_PACKAGES = ("addon", "control_api")


def _is_clone() -> bool:
    return (_CLONE / "pyproject.toml").is_file() and (_CLONE / "control_api").is_dir()


def _import_addon() -> Any:
    try:
        from addon.enforcer import ProxyHooks
    except ModuleNotFoundError as exc:
        if exc.name not in _OUR_PACKAGES or not _is_clone():
            raise
        # A clone used without `pip install -e .`: its own packages, never a foreign site-packages.
        sys.path.insert(0, str(_CLONE))
        from addon.enforcer import ProxyHooks
    return ProxyHooks


def _keep_mitmproxy() -> str:
    """A requirement naming the running mitmproxy: without it pip may downgrade mitmproxy to fit
    the newest versions of our dependencies (12.2.3 pins typing-extensions below what
    pydantic >= 2.12 needs, and pip picked mitmproxy 11.1 instead of an older pydantic)."""
    try:
        from mitmproxy.version import VERSION
    except ImportError:
        return ""
    return f"mitmproxy=={VERSION}"


def missing_dependency(exc: ImportError) -> str:
    """One line: what this Python lacks and the command that installs proxy-hooks into it."""
    if getattr(sys, "frozen", False):
        return (
            "proxy-hooks: mitmproxy's standalone binaries cannot load third-party Python addons; "
            "install mitmproxy with pipx (or pip) and proxy-hooks into it: pipx install mitmproxy "
            "&& pipx inject --include-apps mitmproxy proxy-hooks"
        )
    python = sys.executable
    source = str(_CLONE) if _is_clone() else "proxy-hooks"
    name = exc.name if isinstance(exc, ModuleNotFoundError) and exc.name else None
    if name is None:
        lacks = f"cannot import what proxy-hooks needs ({exc})"
    elif name.split(".")[0] in _OUR_PACKAGES:
        lacks = f"lacks the proxy-hooks package ({name!r})"
    else:
        lacks = f"lacks {name!r}"
    venv, keep = Path(sys.prefix), _keep_mitmproxy()
    if (venv / "pipx_metadata.json").is_file():  # a mitmproxy installed with pipx
        install = f"pipx inject --include-apps {venv.name} {source}" + (f" --pip-args={keep}" if keep else "")
    else:
        install = f"{python} -m pip install {source} {keep}".rstrip()
    return f"proxy-hooks: this mitmproxy's Python ({python}) {lacks}; install proxy-hooks into it: {install}"


try:
    addons = [_import_addon()()]
    from addon.dispatch import other_hook_names

    # mitmproxy looks every event's hook up on this module too (it holds `addons`).
    globals().update(dict.fromkeys(other_hook_names(globals())))
except ImportError as exc:
    logging.getLogger("proxy_hooks").error(missing_dependency(exc))
    addons = []
