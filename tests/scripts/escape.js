// Hostile per-run hook in node: a detached (setsid) child, or one holding our stdout, which
// records its pid in x-pidfile; answers 200 once the pid is recorded.
const { spawn } = require("child_process");
const fs = require("fs");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const event = JSON.parse(input);
  const headers = Object.fromEntries(event.request.headers.map(([k, v]) => [k.toLowerCase(), v]));
  const how = headers["x-escape"], pidfile = headers["x-pidfile"];
  const linger = 'trap "" TERM HUP INT; echo $$ >> "$0"; exec sleep 300';
  const stdio = how === "hold-stdout" ? ["ignore", "inherit", "inherit"] : "ignore";
  spawn("sh", ["-c", linger, pidfile], { detached: how !== "hold-stdout", stdio }).unref();
  const wait = () => {
    if (fs.existsSync(pidfile) && fs.readFileSync(pidfile, "utf8").endsWith("\n")) {
      process.stdout.write(JSON.stringify({ response: { status: 200, body: `node left one behind (${how})` } }));
    } else setTimeout(wait, 5);
  };
  wait();
});
