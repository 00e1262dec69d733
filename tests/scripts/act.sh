#!/usr/bin/env bash
# Test hook in bash: does what the request's x-act header says (protocol v1), with no JSON
# parser: the event's compact JSON is matched as text.
LANG_NAME=bash
event=$(cat)
act=continue
for candidate in modify block exit2 respond edit-response garbage crash hang; do
  case "$event" in *"[\"x-act\", \"$candidate\"]"*) act=$candidate ;; esac
done

case "$event" in *'"phase": "response"'*)
  echo '{"response": {"status": 299, "headers": {"x-edited": "bash"}, "body": "edited by bash"}}'
  exit 0 ;;
esac

case "$act" in
  continue) echo "trace from $LANG_NAME" >&2 ;;
  modify) echo '{"request": {"method": "PUT", "path": "/rewritten?lang=bash", "headers": {"set": {"x-added": "bash"}, "remove": ["x-secret"]}, "body": "body from bash"}}' ;;
  block) echo '{"block": true, "reason": "blocked by bash"}' ;;
  exit2) echo "denied by $LANG_NAME" >&2; exit 2 ;;
  respond) echo '{"response": {"status": 418, "headers": {"x-mock": "bash"}, "body": "teapot from bash"}}' ;;
  edit-response) echo '{"intercept_response": true}' ;;
  garbage) echo "this is not JSON" ;;
  crash) echo "something broke" >&2; exit 3 ;;
  hang)
    pidfile=$(printf '%s' "$event" | sed -n 's/.*\["x-pidfile", "\([^"]*\)"\].*/\1/p')
    sleep 300 &
    echo "$$ $!" > "$pidfile"
    wait ;;
esac
