"""A hostile exec-session hook in Python: handle(event) answers what x-hostile asks for."""

import os


def nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def handle(event):
    headers = {k.lower(): v for k, v in event["request"]["headers"]}
    act = headers.get("x-hostile", "")
    if act == "whoami":
        return {"response": {"status": 200, "body": {"pid": os.getpid()}}}
    if act == "deep":
        return {"response": {"body": nested(100_000)}}
    if act == "deep-100":
        return {"response": {"body": nested(100)}}
    if act == "crlf-response-header":
        return {"response": {"headers": {"x-a": "v\r\nInjected: yes"}}}
    return None
