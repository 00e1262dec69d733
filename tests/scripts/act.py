"""Test hook in Python: does what the request's x-act header says (protocol v1)."""

import json
import os
import subprocess
import sys
import time

event = json.load(sys.stdin)
headers = {name.lower(): value for name, value in event["request"]["headers"]}
act = headers.get("x-act", "continue")
LANG = "python"

if event["phase"] == "response":
    body = event["response"]["body"]
    print(
        json.dumps(
            {"response": {"status": 299, "headers": {"x-edited": LANG}, "body": f"edited by {LANG}: {body}"}}
        )
    )
elif act == "continue":
    print(f"trace from {LANG}", file=sys.stderr)
elif act == "modify":
    print(
        json.dumps(
            {
                "request": {
                    "method": "PUT",
                    "path": "/rewritten?lang=" + LANG,
                    "headers": {"set": {"x-added": LANG}, "remove": ["x-secret"]},
                    "body": f"body from {LANG}",
                }
            }
        )
    )
elif act == "block":
    print(json.dumps({"block": True, "reason": f"blocked by {LANG}"}))
elif act == "exit2":
    print(f"denied by {LANG}", file=sys.stderr)
    sys.exit(2)
elif act == "respond":
    print(
        json.dumps({"response": {"status": 418, "headers": {"x-mock": LANG}, "body": f"teapot from {LANG}"}})
    )
elif act == "edit-response":
    print(json.dumps({"intercept_response": True}))
elif act == "garbage":
    print("this is not JSON")
elif act == "crash":
    print("something broke", file=sys.stderr)
    sys.exit(3)
elif act == "hang":
    # A child in the same process group, to check the whole group dies on timeout.
    child = subprocess.Popen(["sleep", "300"])
    with open(headers["x-pidfile"], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(300)
elif act == "parent":
    ppid = os.getppid()
    with open(f"/proc/{ppid}/stat") as f:
        grandparent = int(f.read().rsplit(")", 1)[1].split()[1])
    print(json.dumps({"response": {"status": 200, "body": {"ppid": ppid, "grandparent": grandparent}}}))
elif act == "env":
    print(json.dumps({"response": {"status": 200, "body": dict(os.environ)}}))
elif act == "echo":
    print(json.dumps({"response": {"status": 200, "body": event}}))
