// Demo hook (JavaScript): ask to see the response, then edit it on its way to the client.
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const event = JSON.parse(input);
  if (event.phase === "request") {
    process.stdout.write(JSON.stringify({ intercept_response: true }));
    return;
  }
  const original = JSON.parse(event.response.body);
  process.stdout.write(JSON.stringify({
    response: { headers: { "x-demo-edited": "edit-response.js" }, body: { edited_by: "edit-response.js", original } },
  }));
});
