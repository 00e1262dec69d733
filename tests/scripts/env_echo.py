"""Test hook: answers with what its environment holds (the secret as a digest), and prints the
secret to stderr, which the proxy must mask before recording it."""

import hashlib
import json
import os
import sys

key = os.environ.get("API_KEY", "")
print(f"key={key}", file=sys.stderr)
body = {
    "lang": "python",
    "api_base": os.environ.get("API_BASE"),
    "api_key_sha256": hashlib.sha256(key.encode()).hexdigest(),
    "path": os.environ.get("PATH"),
    "proxy_secret": os.environ.get("PROXY_HOOKS_TEST_SECRET"),
}
print(json.dumps({"response": {"status": 200, "body": body}}))
