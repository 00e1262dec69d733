"""Test hook: answers with the request's body, verbatim: a test writes the answer to give."""

import json
import sys

event = json.load(sys.stdin)
sys.stdout.write(event["request"]["body"] or "")
