#!/usr/bin/env bash
# Demo hook (bash): refuse to delete users. Exit code 2 means "block"; stderr is the reason.
cat > /dev/null  # the event on stdin is not needed here
echo "deleting users is disabled in the demo" >&2
exit 2
