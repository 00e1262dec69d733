"""Test hook for cached verdicts: every run has its own id, which the verdict carries (a request
header for the upstream, or the block reason), so a test can tell a run from a reused verdict.
x-act: fail makes the run fail (exit 1), block blocks, anything else modifies the request."""

import json
import sys
import uuid

event = json.load(sys.stdin)
headers = {name.lower(): value for name, value in event["request"]["headers"]}
run = uuid.uuid4().hex
act = headers.get("x-act", "modify")
if act == "fail":
    print(f"failing on purpose ({run})", file=sys.stderr)
    sys.exit(1)
if act == "block":
    print(json.dumps({"block": True, "reason": f"run {run}"}))
else:
    print(json.dumps({"request": {"headers": {"set": {"x-run": run}}}}))
