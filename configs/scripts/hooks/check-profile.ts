// Demo hook (TypeScript): refuse a profile update whose email is not an address, before the
// service sees it. Runs with node's own type stripping (node >= 22.13) or tsx (`make` installs it).
interface HookEvent {
  request: { method: string; path: string; body: string | null };
}

interface Answer {
  response?: { status: number; headers: Record<string, string>; body: string };
}

function emailOf(body: string | null): unknown {
  try {
    return (JSON.parse(body ?? "{}") as { email?: unknown }).email;
  } catch {
    return undefined;
  }
}

function check(event: HookEvent): Answer {
  const email = emailOf(event.request.body);
  if (typeof email === "string" && /^[^@\s]+@[^@\s]+$/.test(email)) return {}; // let it through
  const problem = { error: "email must be an address like name@example.com", got: email ?? null, checked_by: "check-profile.ts" };
  return { response: { status: 400, headers: { "content-type": "application/json" }, body: JSON.stringify(problem) } };
}

let input = "";
process.stdin.on("data", (chunk: Buffer) => (input += chunk));
process.stdin.on("end", () => process.stdout.write(JSON.stringify(check(JSON.parse(input) as HookEvent))));
