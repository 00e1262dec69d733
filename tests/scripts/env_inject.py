"""Test hook: sends its environment's API_KEY upstream, the way a hook adding credentials does:
in a header, in the query and in the body (what capture keeps must not hold it)."""

import json
import os
import sys

event = json.load(sys.stdin)
key = os.environ.get("API_KEY", "")
path = event["request"]["path"].split("?", 1)[0]
answer = {
    "request": {
        "path": f"{path}?key={key}",
        "headers": {"set": {"x-api-key": key}},
        "body": f"token={key}",
    }
}
print(json.dumps(answer))
