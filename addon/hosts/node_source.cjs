'use strict';
// Running a JavaScript hook from source already read (from the file the proxy opened and
// checked beneath the scripts folder), never by path again: shared by the exec-session host
// (node_host.cjs) and the per-run bootstrap (NODE_BOOT in addon/scripts.py). TypeScript is turned
// into JavaScript here too, from that source (see addon/typescript.py for the compilers).

const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { pathToFileURL } = require('node:url');
const { spawnSync } = require('node:child_process');

function packageType(dir) {
  for (;;) {
    try { return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).type; } catch {}
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

// .mjs/.mts, or .js/.ts under "type": "module"; .cjs and other .js/.ts are CommonJS.
function isEsm(real) {
  if (real.endsWith('.mjs') || real.endsWith('.mts')) return true;
  return !real.endsWith('.cjs') && packageType(path.dirname(real)) === 'module';
}

function isTypeScript(real) {
  return real.endsWith('.ts') || real.endsWith('.mts');
}

// A module statement at the start of a line (not `import(`): what makes node's own type
// stripping run a .ts file as an ES module (tsx's compiler turns one into CommonJS instead).
const MODULE_SYNTAX = /^\s*(?:import\s*[\w{*'"]|export\s)/m;

// TypeScript as JavaScript, keeping the TypeScript lines in errors: node's stripping leaves every
// line and column in place; tsx's compiler (the esbuild executable, `compiler`, started on the
// source: its node API would start a worker thread, ~10x slower) adds an inline source map, which
// node then applies to stack traces. A syntax error is one short line: file:line:column: what.
function fromTypeScript(real, source, compiler, esm) {
  if (!compiler) throw new Error(`${path.basename(real)}: no TypeScript compiler here (see the proxy's log)`);
  if (compiler === 'node') {
    const stripped = Module.stripTypeScriptTypes(source, { mode: 'strip' });
    return { source: stripped, esm: esm || MODULE_SYNTAX.test(stripped) };
  }
  process.setSourceMapsEnabled(true);
  const args = ['--loader=ts', `--format=${esm ? 'esm' : 'cjs'}`, '--sourcemap=inline',
    `--sourcefile=${real}`, '--color=false', '--log-level=error'];
  const run = spawnSync(compiler, args, { input: source, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (run.status === 0) return { source: run.stdout, esm };
  throw new SyntaxError(compileError(real, run));
}

// esbuild's report (`✘ [ERROR] what`, then `    file:line:column:`, column from 0), in one line.
function compileError(real, run) {
  const name = path.basename(real);
  if (run.error) return `${name}: cannot start the TypeScript compiler: ${run.error.message}`;
  const report = String(run.stderr || '');
  const errors = report.match(/^✘ \[ERROR\] (.*)$/gm) || [];
  const at = /^\s+\S+:(\d+):(\d+):$/m.exec(report);
  if (!errors.length || !at) return `${name}: the TypeScript compiler failed: ${report.trim().slice(0, 500)}`;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more errors)` : '';
  return `${name}:${at[1]}:${Number(at[2]) + 1}: ${errors[0].replace(/^✘ \[ERROR\] /, '')}${more}`;
}

// What node runs for the file `real` whose source was read: {source, esm}.
function javascriptOf(real, source, compiler) {
  const esm = isEsm(real);
  return isTypeScript(real) ? fromTypeScript(real, source, compiler, esm) : { source, esm };
}

// An ES module from the source read: the loader is handed that source for its URL (a `stamp`
// query makes a changed file a new module: ES modules cannot be unloaded).
const ESM_HOOKS = `let url, source;
export async function initialize(data) { url = data.url; source = data.source; }
export async function resolve(s, c, next) {
  return s === url ? { url, format: 'module', shortCircuit: true } : next(s, c);
}
export async function load(u, c, next) {
  return u === url ? { format: 'module', source, shortCircuit: true } : next(u, c);
}`;

function importFromSource(real, source, stamp) {
  const base = pathToFileURL(real).href;
  const url = stamp === undefined ? base : `${base}?stamp=${encodeURIComponent(stamp)}`;
  Module.register('data:text/javascript,' + encodeURIComponent(ESM_HOOKS), { data: { url, source } });
  return import(url);
}

// CommonJS compiled from the source read, at its real path (its requires resolve beside it);
// `main`: as the process's main module, as `node script.js` would run it.
function compileCommonJS(real, source, main = false) {
  const mod = new Module(real, null);
  mod.filename = real;
  mod.paths = Module._nodeModulePaths(path.dirname(real));
  if (main) {
    mod.id = '.';
    process.mainModule = mod;
    Module._cache[real] = mod;
  }
  mod._compile(source, real);
  mod.loaded = true;
  return mod.exports;
}

module.exports = { packageType, isEsm, javascriptOf, importFromSource, compileCommonJS };
