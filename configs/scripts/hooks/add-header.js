// Demo hook (JavaScript): add a header to the request before it reaches the service.
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const event = JSON.parse(input);
  const answer = {
    request: { headers: { set: { "x-demo-hook": `add-header.js saw ${event.request.method} ${event.request.path}` } } },
  };
  process.stdout.write(JSON.stringify(answer));
});
