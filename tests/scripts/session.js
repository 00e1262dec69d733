// Exec-session test hook in JavaScript (CommonJS): `handle(event)` does what x-act says.
const fs = require('node:fs');
const { spawn } = require('node:child_process');

const LANG = 'node';
const VERSION = 'v1'; // the reload test rewrites this line

const answer = (body) => ({
  response: {
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: { pid: process.pid, lang: LANG, version: VERSION, ...body },
  },
});

// Resolves once `count` runs of the same gathering are in flight at once: only a worker that
// runs them concurrently ever gets there.
const gatherings = new Map();
function gather(name, count) {
  if (!gatherings.has(name)) {
    let release;
    const everyone = new Promise((resolve) => { release = resolve; });
    gatherings.set(name, { arrived: 0, everyone, release });
  }
  const g = gatherings.get(name);
  g.arrived += 1;
  if (g.arrived >= count) g.release();
  return g.everyone;
}

exports.handle = async (event) => {
  const headers = Object.fromEntries(event.request.headers.map(([k, v]) => [k.toLowerCase(), v]));
  const act = headers['x-act'] || 'continue';
  if (act === 'continue') { console.error(`trace from ${LANG} session`); return null; }
  if (act === 'whoami') return answer({});
  if (act === 'gather') {
    await gather(headers['x-gathering'], Number(headers['x-count']));
    return answer({});
  }
  if (act === 'sleep') {
    await new Promise((resolve) => setTimeout(resolve, Number(headers['x-sleep']) * 1000));
    return answer({ slept: headers['x-sleep'] });
  }
  if (act === 'block') return { block: true, reason: `blocked by ${LANG} session` };
  if (act === 'spin') for (;;) { /* a sync endless loop: the worker is stuck */ }
  if (act === 'crash') process.exit(3);
  if (act === 'raise') throw new Error('no such user');
  if (act === 'flood') {
    const chunk = Buffer.alloc(65536, 'x');
    const write = () => { try { fs.writeSync(2, chunk); } catch { /* EAGAIN: pipe full */ } };
    setInterval(() => { for (let i = 0; i < 64; i++) write(); }, 1);
    await new Promise((resolve) => setTimeout(resolve, 30000));
  }
  if (act === 'child') {
    const child = spawn('sleep', ['300'], { stdio: 'ignore' });
    fs.writeFileSync(headers['x-pidfile'], `${process.pid} ${child.pid}`);
    return answer({ child: child.pid });
  }
  if (act === 'env') return { response: { status: 200, body: process.env } };
  return { response: { status: 400, body: `unknown act ${act}` } };
};
