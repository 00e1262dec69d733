// A hostile exec-session hook: handle(event) answers what x-hostile asks for.
const fs = require('node:fs');

// Stands in for a worker that misbehaves (a script that replaced the host's writer): the
// answer frame it sends has a 100,000-deep body no JSON.stringify would produce.
const DEEP = 100000;
const write = fs.writeSync;
fs.writeSync = (fd, data, ...rest) => {
  if (Buffer.isBuffer(data) && data.includes('"__deep__"')) {
    const deep = '['.repeat(DEEP) + ']'.repeat(DEEP);
    data = Buffer.from(data.toString().replace('"__deep__"', deep));
  }
  return write(fd, data, ...rest);
};

function nested(depth) {
  let value = 'leaf';
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

exports.handle = (event) => {
  const headers = Object.fromEntries(event.request.headers.map(([k, v]) => [k.toLowerCase(), v]));
  const act = headers['x-hostile'] || '';
  if (act === 'whoami') return { response: { status: 200, body: { pid: process.pid } } };
  if (act === 'deep-echo') return { response: { body: JSON.parse(event.request.body) } };
  if (act === 'deep-100') return { response: { body: nested(100) } };
  if (act === 'deep-raw') return { response: { body: '__deep__' } };
  if (act === 'crlf-response-header') return { response: { headers: { 'x-a': 'v\r\nInjected: yes' } } };
  if (act === 'crlf-set-value') return { request: { headers: { set: { 'x-a': 'v\r\nInjected: yes' } } } };
  return null;
};
