"""The file mitmproxy loads: `mitmdump -s addon/proxy_hooks.py --set hooks_config=PATH`.

A thin shim over the `addon` package, so mitmproxy's hot reload of this file stays cheap and
everything else is importable and testable on its own.
"""

import sys
from pathlib import Path

try:
    from addon.enforcer import ProxyHooks
except ImportError:  # a checkout used without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from addon.enforcer import ProxyHooks

addons = [ProxyHooks()]
