// Test hook in TypeScript, one process per run (protocol v1): the x-act header says what to do.
// `crash` throws a TypeError on line 23, which the run's error must name.
interface HookEvent {
  phase: "request" | "response";
  request: { method: string; path: string; headers: [string, string][] };
}

type Answer = { block?: boolean; reason?: string; request?: object; response?: object };

function header(event: HookEvent, name: string): string | undefined {
  return event.request.headers.find(([key]) => key.toLowerCase() === name)?.[1];
}

function answer(event: HookEvent): Answer | undefined {
  const act: string = header(event, "x-act") ?? "continue";
  if (act === "block") return { block: true, reason: `blocked by typescript (${event.request.method})` };
  if (act === "modify") {
    return { request: { headers: { set: { "x-added": "typescript" } } } };
  }
  if (act === "crash") {
    const missing = undefined as unknown as { field: string };
    // The next line is line 23: reading a field of undefined.
    return { reason: missing.field };
  }
  if (act === "respond") {
    return { response: { status: 418, headers: { "x-mock": "typescript" }, body: "teapot from typescript" } };
  }
  return undefined;
}

let input = "";
process.stdin.on("data", (chunk: Buffer) => (input += chunk));
process.stdin.on("end", () => {
  const reply = answer(JSON.parse(input) as HookEvent);
  if (reply) process.stdout.write(JSON.stringify(reply));
});
