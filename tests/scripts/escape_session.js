// Hostile exec-session hook in node: handle() starts a detached (setsid) child that records its
// pid in x-pidfile; x-escape: crash makes the worker exit.
const { spawn } = require("child_process");
const fs = require("fs");

exports.handle = async (event) => {
  const headers = Object.fromEntries(event.request.headers.map(([k, v]) => [k.toLowerCase(), v]));
  if (headers["x-escape"] === "crash") process.exit(3);
  const pidfile = headers["x-pidfile"];
  const linger = 'trap "" TERM HUP INT; echo $$ >> "$0"; exec sleep 300';
  spawn("sh", ["-c", linger, pidfile], { detached: true, stdio: "ignore" }).unref();
  while (!(fs.existsSync(pidfile) && fs.readFileSync(pidfile, "utf8").endsWith("\n"))) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { response: { status: 200, body: `node session left one behind` } };
};
