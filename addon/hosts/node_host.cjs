'use strict';
// Exec-session worker for JavaScript hook scripts (started by addon/sessions.py).
//
// Loads each script once (again when its stamp changes) and calls its exported
// `handle(event)` for every run; a handle that returns a promise runs concurrently with others.
// CommonJS (`exports.handle = ...`, .cjs/.js) and ES modules (`export function handle`,
// .mjs, or .js under "type": "module") both work.
//
// Frames are one JSON object per line; see python_host.py for the list. Requests come on
// stdin, answers go to the file descriptor given as argv[2]. What a run writes through
// process.stdout/stderr (console.log, console.error, ...) is captured into its own "log".

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { AsyncLocalStorage } = require('node:async_hooks');
const { javascriptOf, importFromSource, compileCommonJS } = require('./node_source.cjs');

// argv: TYPESCRIPT OUT_FD. TYPESCRIPT: what compiles .ts/.mts hooks (see addon/typescript.py), or ''.
const TYPESCRIPT = process.argv[2];
const OUT_FD = Number(process.argv[3]);
const MAX_LOG = 64 * 1024;
const MAX_ANSWER = 1024 * 1024;
const NO_HANDLE =
  'has no exported handle(event) function: a hook with execId runs in an exec session, which ' +
  'calls the script\'s handle(event) (CommonJS: `exports.handle = async (event) => ...`; ' +
  'ES module: `export async function handle(event)`)';

class RunLog {
  constructor() { this.parts = []; this.size = 0; this.dropped = 0; }
  write(text) {
    const room = Math.max(MAX_LOG - this.size, 0);
    if (text.length > room) { this.dropped += text.length - room; text = text.slice(0, room); }
    if (text) { this.parts.push(text); this.size += text.length; }
  }
  text() {
    const tail = this.dropped ? `\n…[${this.dropped} more characters dropped]` : '';
    return this.parts.join('') + tail;
  }
}

const currentLog = new AsyncLocalStorage();

// Inside a run, writes go to that run's log; outside one, to the worker's own output.
for (const stream of [process.stdout, process.stderr]) {
  const original = stream.write.bind(stream);
  stream.write = (chunk, encoding, callback) => {
    const log = currentLog.getStore();
    if (!log) return original(chunk, encoding, callback);
    log.write(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
}

class LoadError extends Error {}

const scripts = new Map(); // path -> {stamp, handle: Promise<function>}

// The scripts folder's real path: the worker starts in it (see Worker.start in sessions.py).
const ROOT = process.cwd();

// The source of the file `file` opens, and its real path, which must be beneath ROOT: checked
// on the open file, so a symlink swapped in between cannot make this load anything else.
function readBeneath(file, shown) {
  const name = path.basename(file);
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    throw new LoadError(`cannot load ${name}: ${err.message}`);
  }
  try {
    const real = fs.readlinkSync(`/proc/self/fd/${fd}`).replace(/ \(deleted\)$/, '');
    if (!real.startsWith(ROOT.replace(/\/$/, '') + '/')) {
      throw new LoadError(`script ${shown} resolves outside the scripts folder`);
    }
    if (!fs.fstatSync(fd).isFile()) throw new LoadError(`cannot load ${name}: not a regular file`);
    return { real, source: fs.readFileSync(fd, 'utf8') };
  } finally {
    fs.closeSync(fd);
  }
}

async function load(file, stamp, shown) {
  const name = path.basename(file);
  const { real, source } = readBeneath(file, shown);
  let mod;
  try {
    const compiled = javascriptOf(real, source, TYPESCRIPT);
    mod = compiled.esm ? await importFromSource(real, compiled.source, stamp) : compileCommonJS(real, compiled.source);
  } catch (err) {
    console.error(err && err.stack ? err.stack : String(err));
    const hint = /import statement|export/.test(String(err && err.message))
      ? ' (an ES module: name it .mjs, or add "type": "module" to a package.json beside it)' : '';
    throw new LoadError(`cannot load ${name}: ${err && err.name ? err.name : 'Error'}: ${err && err.message}${hint}`);
  }
  const handle = [mod && mod.handle, mod && mod.default && mod.default.handle].find((f) => typeof f === 'function');
  if (!handle) throw new LoadError(`${name} ${NO_HANDLE}`);
  return handle;
}

function handleFor(file, stamp, shown) {
  let entry = scripts.get(file);
  if (!entry || entry.stamp !== stamp) {
    entry = { stamp, handle: load(file, stamp, shown) };
    entry.handle.catch(() => {}); // reported to the run that awaits it
    scripts.set(file, entry);
  }
  return entry.handle;
}

function send(frame) {
  let data = Buffer.from(JSON.stringify(frame) + '\n');
  while (data.length) {
    const written = fs.writeSync(OUT_FD, data);
    data = data.subarray(written);
  }
}

function describe(err) {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  try { return `threw ${JSON.stringify(err)}`; } catch { return `threw ${String(err)}`; }
}

// Where in the script `err` was thrown, as " (file:line:column)": the first stack frame in that
// file. For TypeScript that is the TypeScript line (node maps frames through the source map).
function whereIn(err, file) {
  const name = path.basename(file);
  const stack = err instanceof Error && typeof err.stack === 'string' ? err.stack : '';
  for (const line of stack.split('\n').slice(1)) {
    const frame = /[\s(]((?:file:\/\/)?[^\s()]+?):(\d+):(\d+)\)?$/.exec(line);
    if (frame && path.basename(frame[1].split('?')[0]) === name) return ` (${name}:${frame[2]}:${frame[3]})`;
  }
  return '';
}

function answerFields(answer) {
  if (answer === undefined || answer === null) return { answer: null };
  if (typeof answer !== 'object' || Array.isArray(answer)) {
    const kind = Array.isArray(answer) ? 'array' : typeof answer;
    return { error: `handle must return an object (the protocol v1 answer) or nothing, got ${kind}`, kind: 'handle' };
  }
  let text;
  try { text = JSON.stringify(answer); } catch (err) {
    return { error: `handle returned a value that is not JSON: ${err.message}`, kind: 'handle' };
  }
  if (text.length > MAX_ANSWER) return { error: `output over ${MAX_ANSWER / 1024} KiB`, kind: 'handle' };
  return { answer };
}

const running = new Set();
const cancelled = new Set();

async function run(frame) {
  const log = new RunLog();
  const reply = { id: frame.id };
  running.add(frame.id);
  await currentLog.run(log, async () => {
    let handle;
    try {
      const hook = (frame.event && frame.event.hook) || {};
      handle = await handleFor(frame.script, frame.stamp, (hook.script && hook.script.path) || frame.script);
    } catch (err) {
      Object.assign(reply, { error: err instanceof LoadError ? err.message : describe(err), kind: 'load' });
      return;
    }
    try {
      Object.assign(reply, answerFields(await handle(frame.event)));
    } catch (err) {
      console.error(err && err.stack ? err.stack : String(err));
      Object.assign(reply, { error: `handle raised ${describe(err)}${whereIn(err, frame.script)}`, kind: 'handle' });
    }
  });
  running.delete(frame.id);
  if (cancelled.delete(frame.id)) return; // the proxy gave up on it
  reply.log = log.text();
  send(reply);
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  const frame = JSON.parse(line);
  if (frame.op === 'ping') send({ id: frame.id, pong: true });
  else if (frame.op === 'cancel' && running.has(frame.id)) cancelled.add(frame.id);
  else if (frame.op === 'run') run(frame);
});
lines.on('close', () => process.exit(0));
