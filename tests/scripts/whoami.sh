#!/usr/bin/env bash
# Answers with the user, group and supplementary groups the hook runs as.
cat >/dev/null
echo "{\"response\": {\"status\": 200, \"body\": {\"uid\": $(id -u), \"gid\": $(id -g), \"groups\": \"$(id -G)\"}}}"
