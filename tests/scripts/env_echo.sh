# Test hook: answers with what its environment holds (the secret as a digest), and prints the
# secret to stderr, which the proxy must mask before recording it.
cat > /dev/null
echo "key=${API_KEY}" >&2
digest=$(printf '%s' "${API_KEY}" | sha256sum | cut -d' ' -f1)
printf '{"response": {"status": 200, "body": {"lang": "bash", "api_base": "%s", "api_key_sha256": "%s", "path": "%s", "proxy_secret": %s}}}' \
  "${API_BASE}" "${digest}" "${PATH}" "$( [ -n "${PROXY_HOOKS_TEST_SECRET+x}" ] && echo '"set"' || echo null )"
