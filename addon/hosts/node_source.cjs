'use strict';
// Running a JavaScript hook from source already read (from the file the proxy opened and
// checked beneath the scripts folder), never by path again: shared by the exec-session host
// (node_host.cjs) and the per-run bootstrap (NODE_BOOT in addon/scripts.py).

const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { pathToFileURL } = require('node:url');

function packageType(dir) {
  for (;;) {
    try { return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).type; } catch {}
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

// .mjs, or .js under "type": "module"; .cjs and other .js are CommonJS.
function isEsm(real) {
  return real.endsWith('.mjs') || (!real.endsWith('.cjs') && packageType(path.dirname(real)) === 'module');
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

module.exports = { packageType, isEsm, importFromSource, compileCommonJS };
