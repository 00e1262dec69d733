"""Exec-session test hook: answers with the worker's environment (the secret as a digest)."""

import hashlib
import os
import sys


def handle(event):
    key = os.environ.get("API_KEY", "")
    print(f"key={key}", file=sys.stderr)
    body = {
        "lang": "python-session",
        "pid": os.getpid(),
        "api_base": os.environ.get("API_BASE"),
        "api_key_sha256": hashlib.sha256(key.encode()).hexdigest(),
        "path": os.environ.get("PATH"),
        "proxy_secret": os.environ.get("PROXY_HOOKS_TEST_SECRET"),
    }
    return {"response": {"status": 200, "body": body}}
