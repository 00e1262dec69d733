"""Test hook: runs the test script the x-run header names (act.py, act.sh) on the same event,
passes its answer and exit code on, and keeps copies of the event and of the answer in the
x-capture folder, `<phase>.event.json` and `<phase>.answer.json`: the protocol's real traffic."""

import json
import os
import subprocess
import sys

raw = sys.stdin.buffer.read()
event = json.loads(raw)
headers = {name.lower(): value for name, value in event["request"]["headers"]}
script = headers["x-run"]
interpreter = {".py": sys.executable, ".sh": "bash"}[os.path.splitext(script)[1]]
done = subprocess.run([interpreter, script], input=raw, capture_output=True, check=False)
folder, phase = headers["x-capture"], event["phase"]
with open(os.path.join(folder, f"{phase}.event.json"), "wb") as copy:
    copy.write(raw)
with open(os.path.join(folder, f"{phase}.answer.json"), "wb") as copy:
    copy.write(done.stdout)
sys.stdout.buffer.write(done.stdout)
sys.stderr.buffer.write(done.stderr)
sys.exit(done.returncode)
