"""A hostile hook (per run): answers what the request's x-hostile header asks for, each answer
one way of putting something on the wire that breaks HTTP. The proxy must refuse every one."""

import json
import sys

INJECT = "v\r\nInjected: yes"
DEEP = 100_000

event = json.load(sys.stdin)
headers = {k.lower(): v for k, v in event["request"]["headers"]}
act = headers.get("x-hostile", "")
response_phase = event["phase"] == "response"


def edit_response(answer: dict) -> None:
    """In the request phase ask to see the response; in the response phase answer `answer`."""
    print(json.dumps(answer if response_phase else {"intercept_response": True}))


if act == "crlf-response-header":
    print(json.dumps({"response": {"status": 200, "headers": {"x-a": INJECT}, "body": "hostile"}}))
elif act == "crlf-response-name":
    print(json.dumps({"response": {"headers": {"x-a\r\nInjected": "yes"}, "body": "hostile"}}))
elif act == "crlf-response-edit":
    edit_response({"response": {"headers": {"x-a": INJECT}}})
elif act == "crlf-response-edit-name":
    edit_response({"response": {"headers": {"x-a\r\nInjected": "yes"}}})
elif act == "crlf-set-value":
    print(json.dumps({"request": {"headers": {"set": {"x-a": INJECT}}}}))
elif act == "crlf-set-name":
    print(json.dumps({"request": {"headers": {"set": {"x-a\r\nInjected": "yes"}}}}))
elif act == "crlf-remove":
    print(json.dumps({"request": {"headers": {"remove": ["x-marker\r\nInjected: yes"]}}}))
elif act == "nul-set-value":
    print(json.dumps({"request": {"headers": {"set": {"x-a": "v\0Injected: yes"}}}}))
elif act == "crlf-path":
    smuggled = "/x HTTP/1.1\r\nHost: auth.test\r\nInjected: yes\r\n\r\nGET /smuggled"
    print(json.dumps({"request": {"path": smuggled}}))
elif act == "length-set":
    # a body the client sent, announced as empty: what follows would be a second request
    print(json.dumps({"request": {"headers": {"set": {"content-length": "0"}}}}))
elif act == "length-remove":
    print(json.dumps({"request": {"headers": {"remove": ["content-length"]}}}))
elif act == "deep":
    sys.stdout.write('{"response": {"body": ' + "[" * DEEP + "]" * DEEP + "}}")
elif act == "deep-echo":
    # the client shapes the answer: its body goes into the answer as JSON, unparsed
    sys.stdout.write('{"response": {"body": ' + event["request"]["body"] + "}}")
elif act.startswith("status-"):
    print(json.dumps({"response": {"status": int(act.removeprefix("status-")), "body": ""}}))
elif act.startswith("edit-status-"):
    edit_response({"response": {"status": int(act.removeprefix("edit-status-"))}})
elif act == "body-for-head":
    # sent after the head of a response to HEAD, these bytes would be the client's next response
    print(json.dumps({"response": {"status": 200, "body": "HTTP/1.1 200 OK\r\nInjected: yes\r\n\r\n"}}))
elif act == "edit-body-for-head":
    edit_response({"response": {"body": "HTTP/1.1 200 OK\r\nInjected: yes\r\n\r\n"}})
elif act == "no-content-with-body":
    print(json.dumps({"response": {"status": 204, "body": "HTTP/1.1 200 OK\r\nInjected: yes\r\n\r\n"}}))
