#!/usr/bin/env bash
# Hostile per-run hook in bash: leaves a process behind the way x-escape says, which records
# its pid in x-pidfile; answers 200 once the pid is recorded.
event=$(cat)
field() { printf '%s' "$event" | sed -n "s/.*\[\"$1\", \"\([^\"]*\)\"\].*/\1/p"; }
how=$(field x-escape)
pidfile=$(field x-pidfile)
linger='trap "" TERM HUP INT; echo $$ >> "$0"; exec sleep 300'
case "$how" in
  setsid|setsid-command) setsid sh -c "$linger" "$pidfile" </dev/null >/dev/null 2>&1 & ;;
  double-fork) ( sh -c "$linger" "$pidfile" </dev/null >/dev/null 2>&1 & ) ;;
  nohup) nohup sh -c "$linger" "$pidfile" </dev/null >/dev/null 2>&1 & ;;
  daemon) setsid sh -c '( sh -c "$1" "$0" </dev/null >/dev/null 2>&1 & )' "$pidfile" "$linger" \
            </dev/null >/dev/null 2>&1 & ;;
  ignore-signals) ( trap '' TERM HUP INT; sh -c "$linger" "$pidfile" </dev/null >/dev/null 2>&1 ) & ;;
  hold-stdout) sh -c "$linger" "$pidfile" & ;;
  kill-supervisor) setsid sh -c "$linger" "$pidfile" </dev/null >/dev/null 2>&1 & ;;
  *) echo "unknown x-escape $how" >&2; exit 3 ;;
esac
until [ -s "$pidfile" ]; do sleep 0.01; done
[ "$how" = kill-supervisor ] && kill -9 "$PPID"  # whoever waits for us: it shares our user
echo "{\"response\": {\"status\": 200, \"body\": \"bash left one behind ($how)\"}}"
