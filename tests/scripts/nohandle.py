"""An exec-session script without handle(event)."""

GREETING = "hello"
