"""What mitmproxy's per-event dispatch costs an addon that is not interested in the event.

For every event (each flow has at least eight: its four hooks and an `update` after each) mitmproxy
walks every addon, and the `-s` script module that holds `addons`, and looks the event's name up
on each (`getattr(addon, name, None)`). A name that is not there costs a raised and caught
AttributeError, its message formatted, every time; a name that is there but None is passed over
for the price of an attribute look-up. So the module and the addon class carry every hook name
they do not implement as None: ~0.1 M instructions per request (callgrind), ~1 % of bare.
"""

from __future__ import annotations

from collections.abc import Container

from mitmproxy import hooks

# mitmproxy warns about an addon that has these (renamed or deprecated events).
_DEPRECATED = frozenset({"add_log", "clientconnect", "clientdisconnect", "serverconnect", "serverdisconnect"})


def other_hook_names(defined: Container[str]) -> list[str]:
    """The mitmproxy hook names not in `defined` (the names a class or a module has): those to
    set to None. mitmproxy registers its hooks as it imports them: when it loads a script, all
    of them are known."""
    return [name for name in list(hooks.all_hooks) if name not in defined and name not in _DEPRECATED]


def pass_over_other_hooks(cls: type) -> None:
    """Every hook `cls` does not implement, as None on the class."""
    for name in other_hook_names(dir(cls)):
        setattr(cls, name, None)
