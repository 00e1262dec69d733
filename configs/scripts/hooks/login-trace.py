"""Demo hook: note the login attempt on stderr and let the request through unchanged."""

import json
import sys

event = json.load(sys.stdin)
request = event["request"]
print(f"login attempt: {request['method']} {request['path']}", file=sys.stderr)
# Empty output means: carry on unchanged.
