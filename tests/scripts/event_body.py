"""Test hook: tells the upstream, in a header, how much of the request body its event carried."""

import json
import sys

request = json.load(sys.stdin)["request"]
carried = f"{len(request['body'] or '')} {'true' if request['body_truncated'] else 'false'}"
print(json.dumps({"request": {"headers": {"set": {"x-event-body": carried}}}}))
