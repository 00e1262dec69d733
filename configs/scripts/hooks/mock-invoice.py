"""Demo hook (Python): answer the request itself; the billing service is never contacted."""

import json
import sys

json.load(sys.stdin)
invoice = {"id": "demo", "amount": 42, "currency": "EUR", "mocked_by": "mock-invoice.py"}
answer = {"response": {"status": 200, "headers": {"content-type": "application/json"}, "body": invoice}}
print(json.dumps(answer))
