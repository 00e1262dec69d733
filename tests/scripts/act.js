// Test hook in JavaScript: does what the request's x-act header says (protocol v1).
const { spawn } = require("child_process");
const fs = require("fs");
const LANG = "node";

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const event = JSON.parse(input);
  const headers = Object.fromEntries(event.request.headers.map(([k, v]) => [k.toLowerCase(), v]));
  const act = headers["x-act"] || "continue";
  const out = (obj) => process.stdout.write(JSON.stringify(obj));
  if (event.phase === "response") {
    out({ response: { status: 299, headers: { "x-edited": LANG }, body: `edited by ${LANG}: ${event.response.body}` } });
  } else if (act === "continue") {
    process.stderr.write(`trace from ${LANG}\n`);
  } else if (act === "modify") {
    out({ request: { method: "PUT", path: "/rewritten?lang=" + LANG,
                     headers: { set: { "x-added": LANG }, remove: ["x-secret"] }, body: `body from ${LANG}` } });
  } else if (act === "block") {
    out({ block: true, reason: `blocked by ${LANG}` });
  } else if (act === "exit2") {
    process.stderr.write(`denied by ${LANG}\n`);
    process.exitCode = 2;
  } else if (act === "respond") {
    out({ response: { status: 418, headers: { "x-mock": LANG }, body: `teapot from ${LANG}` } });
  } else if (act === "edit-response") {
    out({ intercept_response: true });
  } else if (act === "garbage") {
    process.stdout.write("this is not JSON");
  } else if (act === "crash") {
    throw new Error("something broke");
  } else if (act === "hang") {
    const child = spawn("sleep", ["300"], { stdio: "ignore" });
    fs.writeFileSync(headers["x-pidfile"], `${process.pid} ${child.pid}`);
    setInterval(() => {}, 1000);
  }
});
