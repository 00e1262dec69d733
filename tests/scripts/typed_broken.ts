// A TypeScript hook that does not compile: the missing ")" on line 4 must be named.
const answer: { block: boolean } = { block: true };

process.stdout.write(JSON.stringify(answer);
export async function handle() { return answer; }
