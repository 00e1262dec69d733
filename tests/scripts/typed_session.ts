// A TypeScript exec-session hook: answers from handle(event), keeps a count per worker.
// `crash` throws a TypeError on line 16, which the run's error must name.
interface HookEvent {
  request: { method: string; headers: [string, string][] };
}

let runs: number = 0;

export async function handle(event: HookEvent): Promise<object | undefined> {
  runs += 1;
  const act = event.request.headers.find(([key]) => key.toLowerCase() === "x-act")?.[1];
  if (act === "respond") {
    return { response: { status: 200, headers: { "x-runs": String(runs) }, body: `typescript session run ${runs}` } };
  }
  if (act === "crash") {
    return (undefined as unknown as { answer: object }).answer;
  }
  return { block: true, reason: `blocked by a typescript session (${event.request.method})` };
}
