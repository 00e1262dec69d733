// An ES-module exec-session hook: blocks, naming its module kind.
export async function handle(event) {
  return { block: true, reason: `blocked by an ES module (${event.request.method})` };
}
