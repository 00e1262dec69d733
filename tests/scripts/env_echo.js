// Test hook: answers with what its environment holds (the secret as a digest), and prints the
// secret to stderr, which the proxy must mask before recording it.
const crypto = require("crypto");
const key = process.env.API_KEY || "";
process.stderr.write(`key=${key}\n`);
const body = {
  lang: "node",
  api_base: process.env.API_BASE ?? null,
  api_key_sha256: crypto.createHash("sha256").update(key).digest("hex"),
  path: process.env.PATH ?? null,
  proxy_secret: process.env.PROXY_HOOKS_TEST_SECRET ?? null,
};
process.stdout.write(JSON.stringify({ response: { status: 200, body } }));
