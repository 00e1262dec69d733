// Exec-session test hook: answers with the worker's environment (the secret as a digest).
const crypto = require("crypto");

exports.handle = (event) => {
  const key = process.env.API_KEY || "";
  const body = {
    lang: "node-session",
    pid: process.pid,
    api_base: process.env.API_BASE ?? null,
    api_key_sha256: crypto.createHash("sha256").update(key).digest("hex"),
    path: process.env.PATH ?? null,
    proxy_secret: process.env.PROXY_HOOKS_TEST_SECRET ?? null,
  };
  return { response: { status: 200, body } };
};
