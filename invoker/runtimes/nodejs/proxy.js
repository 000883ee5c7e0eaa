'use strict';
// Homerun action proxy for Node.js. Speaks the OpenWhisk /init and /run JSON protocol over HTTP/1.1
// on a unix socket (env HOMERUN_SOCKET). Standard library only: it runs inside minimal images.

const { AsyncLocalStorage } = require('async_hooks');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const vm = require('vm');
const zlib = require('zlib');
const { createRequire } = require('module');

const SOCKET = process.env.HOMERUN_SOCKET || '/run/homerun/action.sock';
// With HOMERUN_TCP_PORT set, listen on that TCP port instead, as standard OpenWhisk runtime
// images do on 8080 (this is how the image serves as a blackbox image).
const TCP_PORT = process.env.HOMERUN_TCP_PORT;
// With HOMERUN_API_SOCKET and HOMERUN_API_PORT set (the docker sandbox sets both), connections
// to 127.0.0.1:<port> are piped to the invoker's API relay socket: the container's one way out
// to the Homerun API, which __OW_API_HOST then names.
const API_SOCKET = process.env.HOMERUN_API_SOCKET;
const API_PORT = process.env.HOMERUN_API_PORT;
const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n';
const MAX_BODY = 64 * 1024 * 1024;

const NOT_A_DICTIONARY = 'The action did not return a dictionary.';
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let action = null; // the function named by `main`, once /init has succeeded

// ---- logs of concurrent activations ------------------------------------------------------------
// With __OW_ALLOW_CONCURRENT=true, activations overlap in this process. Every line one of them
// writes (console or process.stdout/stderr, also from callbacks it started) is tagged with its
// activation id, `\x1e<id>\x1f<line>`, and so are its sentinels: the invoker gives each
// activation its own lines. Output outside any activation stays untagged.

const TAG_START = '\x1e';
const TAG_END = '\x1f';
const activation = new AsyncLocalStorage(); // { id, partial: { stdout, stderr } } of the running one
const writers = {
  stdout: process.stdout.write.bind(process.stdout),
  stderr: process.stderr.write.bind(process.stderr),
};

function tagged(id, line) {
  return `${TAG_START}${id}${TAG_END}${line}\n`;
}

function tagOutput() {
  for (const name of ['stdout', 'stderr']) {
    process[name].write = (chunk, encoding, callback) => {
      if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
      const current = activation.getStore();
      if (current === undefined) return writers[name](chunk, encoding, callback);
      const text =
        typeof chunk === 'string' && (!encoding || encoding === 'utf8')
          ? chunk
          : Buffer.from(chunk, encoding).toString('utf8');
      const lines = (current.partial[name] + text).split('\n');
      current.partial[name] = lines.pop(); // a line is written once it is complete
      if (lines.length === 0) {
        if (callback) process.nextTick(callback);
        return true;
      }
      return writers[name](lines.map((line) => tagged(current.id, line)).join(''), callback);
    };
  }
}

// ---- zip archives -------------------------------------------------------------------------------

function unzip(buffer, destination) {
  // Extracts a zip archive (stored or deflated entries, no zip64) under `destination`.
  const EOCD = 0x06054b50;
  const CENTRAL = 0x02014b50;
  const LOCAL = 0x04034b50;
  let eocd = -1;
  const lowest = Math.max(0, buffer.length - 22 - 0xffff);
  for (let i = buffer.length - 22; i >= lowest; i--) {
    if (buffer.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('the archive is not a zip file');
  const count = buffer.readUInt16LE(eocd + 10);
  let offset = buffer.readUInt32LE(eocd + 16);
  if (count === 0xffff || offset === 0xffffffff) throw new Error('zip64 archives are not supported');
  const root = path.resolve(destination);
  for (let n = 0; n < count; n++) {
    if (offset + 46 > buffer.length || buffer.readUInt32LE(offset) !== CENTRAL) {
      throw new Error('corrupt zip central directory');
    }
    const flags = buffer.readUInt16LE(offset + 8);
    const method = buffer.readUInt16LE(offset + 10);
    const compressedSize = buffer.readUInt32LE(offset + 20);
    const size = buffer.readUInt32LE(offset + 24);
    const nameLength = buffer.readUInt16LE(offset + 28);
    const extraLength = buffer.readUInt16LE(offset + 30);
    const commentLength = buffer.readUInt16LE(offset + 32);
    const externalAttributes = buffer.readUInt32LE(offset + 38);
    const localOffset = buffer.readUInt32LE(offset + 42);
    const name = buffer.toString('utf8', offset + 46, offset + 46 + nameLength);
    offset += 46 + nameLength + extraLength + commentLength;

    const target = path.resolve(root, name);
    if (target !== root && !target.startsWith(root + path.sep)) {
      throw new Error(`zip entry '${name}' points outside the archive`);
    }
    if (name.endsWith('/')) {
      fs.mkdirSync(target, { recursive: true });
      continue;
    }
    if (flags & 0x1) throw new Error(`zip entry '${name}' is encrypted`);
    if (localOffset + 30 > buffer.length || buffer.readUInt32LE(localOffset) !== LOCAL) {
      throw new Error(`corrupt zip entry '${name}'`);
    }
    const start =
      localOffset + 30 + buffer.readUInt16LE(localOffset + 26) + buffer.readUInt16LE(localOffset + 28);
    if (start + compressedSize > buffer.length) throw new Error(`truncated zip entry '${name}'`);
    const raw = buffer.subarray(start, start + compressedSize);
    let data;
    if (method === 0) data = raw;
    else if (method === 8) data = zlib.inflateRawSync(raw);
    else throw new Error(`zip entry '${name}' uses unsupported compression method ${method}`);
    if (data.length !== size) throw new Error(`zip entry '${name}' has the wrong size`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const unixMode = (externalAttributes >>> 16) & 0o777;
    fs.writeFileSync(target, data, { mode: unixMode & 0o111 ? 0o755 : 0o644 });
  }
}

// ---- loading the action ---------------------------------------------------------------------

function syntaxErrorLocation(err) {
  // vm reports where a SyntaxError is only in the first line of its stack ("file:line").
  const first = typeof err.stack === 'string' ? err.stack.split('\n', 1)[0] : '';
  return /:\d+$/.test(first) ? ` (at ${path.basename(first)})` : '';
}

function isBindingName(name) {
  // Whether `typeof <name>` compiles, i.e. the name is an identifier and not a reserved word.
  if (!IDENTIFIER.test(name)) return false;
  try {
    new vm.Script(`typeof ${name}`);
    return true;
  } catch {
    return false;
  }
}

function loadPlain(code, main, directory) {
  // Evaluates plain source the way CommonJS would, then finds `main` as an export or as a
  // top-level binding (`function main() {}`, `const main = ...`).
  const filename = path.join(directory, 'action.js');
  const lookup = isBindingName(main)
    ? `\n;return function () { return typeof ${main} === 'undefined' ? undefined : ${main}; };`
    : '\n;return function () { return undefined; };';
  const source = `(function (exports, require, module, __filename, __dirname) {${code}${lookup}\n})`;
  let wrapper;
  try {
    wrapper = vm.runInThisContext(source, { filename });
  } catch (err) {
    if (err instanceof SyntaxError) err.message += syntaxErrorLocation(err);
    throw err;
  }
  const module = { exports: {} };
  const local = wrapper.call(module.exports, module.exports, createRequire(filename), module,
    filename, directory);
  const exported = module.exports !== null && module.exports !== undefined ? module.exports[main] : undefined;
  if (typeof exported === 'function') return exported;
  return typeof local === 'function' ? local() : undefined;
}

function loadZip(code, main, directory) {
  const buffer = Buffer.from(code, 'base64');
  if (buffer.length === 0) throw new Error('the archive is empty or not base64');
  unzip(buffer, directory);
  const hasPackage = fs.existsSync(path.join(directory, 'package.json'));
  if (!hasPackage && !fs.existsSync(path.join(directory, 'index.js'))) {
    throw new Error('Zipped actions must contain either package.json or index.js at the root.');
  }
  const exported = require(directory);
  return exported !== null && exported !== undefined ? exported[main] : undefined;
}

function setEnvironment(env) {
  for (const [key, value] of Object.entries(env || {})) {
    if (value === null || value === undefined) process.env[key] = '';
    else process.env[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
}

function init(message) {
  if (action !== null) {
    throw new HttpError(403, 'Cannot initialize the action more than once.');
  }
  const value = message && typeof message.value === 'object' ? message.value : null;
  if (value === null || typeof value.code !== 'string' || value.code === '') {
    throw new HttpError(502, 'Missing main/no code to execute.');
  }
  const main = typeof value.main === 'string' && value.main !== '' ? value.main : 'main';
  if (value.env !== null && typeof value.env === 'object') setEnvironment(value.env);
  let fn;
  try {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'action-'));
    fn = value.binary ? loadZip(value.code, main, directory) : loadPlain(value.code, main, directory);
  } catch (err) {
    throw new HttpError(502, `Initialization has failed due to: ${describe(err, true)}`);
  }
  if (typeof fn !== 'function') {
    throw new HttpError(502, `Action entrypoint '${main}' is not a function.`);
  }
  action = fn;
}

// ---- running it -----------------------------------------------------------------------------

function describe(err, withName) {
  try {
    if (err instanceof Error || (err && typeof err.message === 'string')) {
      const name = err.name || 'Error';
      if (withName) return err.message ? `${name}: ${err.message}` : name;
      return err.message || name;
    }
    return typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    return 'unknown error';
  }
}

function serialize(result) {
  // The body for a result, or null when it is not a JSON object or array.
  if (result === null || typeof result !== 'object') return null;
  let body;
  try {
    body = JSON.stringify(result);
  } catch {
    return null;
  }
  return typeof body === 'string' && (body[0] === '{' || body[0] === '[') ? body : null;
}

async function run(message) {
  if (action === null) throw new HttpError(403, 'Cannot run the action before it is initialized.');
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    throw new HttpError(400, 'The request body must be a JSON object.');
  }
  for (const [key, value] of Object.entries(message)) {
    if (key === 'value') continue;
    const text = value === null || value === undefined ? '' : value;
    process.env[`__OW_${key.toUpperCase()}`] = typeof text === 'string' ? text : JSON.stringify(text);
  }
  const params = message.value === undefined ? {} : message.value;
  let result;
  try {
    result = await action(params);
  } catch (err) {
    process.stderr.write(`${err && err.stack ? err.stack : describe(err, false)}\n`);
    return [502, JSON.stringify({ error: `An error has occurred: ${describe(err, false)}` })];
  }
  const body = serialize(result);
  return body === null ? [502, JSON.stringify({ error: NOT_A_DICTIONARY })] : [200, body];
}

function writeSentinels(current) {
  // Resolves once both sentinels (and so everything the action wrote before) reached fd 1 and 2;
  // tagged, after the activation's unfinished lines, when activations run concurrently.
  const write = (name) =>
    new Promise((resolve) => {
      let text = SENTINEL;
      if (current !== undefined) {
        const rest = current.partial[name];
        text = (rest ? tagged(current.id, rest) : '') + tagged(current.id, SENTINEL.trimEnd());
      }
      writers[name](text, () => resolve());
    });
  return Promise.all([write('stdout'), write('stderr')]);
}

// ---- HTTP -----------------------------------------------------------------------------------

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    request.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, 'The request body is too large.'));
        request.destroy();
      } else chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

async function parseJson(request) {
  const text = await readBody(request);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `The request body is not valid JSON: ${err.message}`);
  }
}

function send(response, status, body) {
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
}

async function handle(request, response) {
  const route = `${request.method} ${request.url.split('?', 1)[0]}`;
  try {
    if (route === 'GET /health') {
      send(response, 200, '{"ok":true}');
    } else if (route === 'POST /init') {
      init(await parseJson(request));
      send(response, 200, '{"ok":true}');
    } else if (route === 'POST /run') {
      let status;
      let body;
      let current;
      try {
        const message = await parseJson(request);
        const id = message && typeof message === 'object' ? message.activation_id : undefined;
        if (process.env.__OW_ALLOW_CONCURRENT === 'true' && typeof id === 'string') {
          current = { id, partial: { stdout: '', stderr: '' } };
          [status, body] = await activation.run(current, () => run(message));
        } else {
          [status, body] = await run(message);
        }
      } finally {
        await writeSentinels(current); // also when the request was refused: the invoker waits for them
      }
      send(response, status, body);
    } else if (['/health', '/init', '/run'].includes(request.url.split('?', 1)[0])) {
      send(response, 405, '{"error":"Method not allowed."}');
    } else {
      send(response, 404, '{"error":"Not found."}');
    }
  } catch (err) {
    const status = err instanceof HttpError ? err.status : 500;
    if (!response.headersSent) send(response, status, JSON.stringify({ error: err.message }));
  }
}

function forwardApi() {
  if (!API_SOCKET || !API_PORT) return;
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const relay = net.connect({ path: API_SOCKET, allowHalfOpen: true });
    client.on('error', () => relay.destroy());
    relay.on('error', () => client.destroy());
    client.pipe(relay);
    relay.pipe(client);
  });
  server.on('error', (err) => {
    process.stderr.write(`homerun proxy: cannot serve the API on port ${API_PORT}: ${err.message}\n`);
  });
  server.listen(Number(API_PORT), '127.0.0.1');
  server.unref();
}

function listen() {
  if (TCP_PORT) {
    const server = http.createServer((request, response) => handle(request, response));
    server.keepAliveTimeout = 0;
    server.requestTimeout = 0;
    server.listen(Number(TCP_PORT), '0.0.0.0');
    process.on('SIGTERM', () => process.exit(0));
    return;
  }
  try {
    fs.mkdirSync(path.dirname(SOCKET), { recursive: true });
  } catch {
    // The directory is usually a bind mount that exists already; listen() reports real problems.
  }
  fs.rmSync(SOCKET, { force: true });
  const server = http.createServer((request, response) => {
    handle(request, response);
  });
  server.keepAliveTimeout = 0; // the invoker keeps one connection for the container's lifetime
  server.requestTimeout = 0; // actions may run for hours; the invoker enforces the time limit
  server.on('error', (err) => {
    process.stderr.write(`homerun proxy: cannot listen on ${SOCKET}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(SOCKET, () => fs.chmodSync(SOCKET, 0o666));
  const stop = () => {
    fs.rmSync(SOCKET, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

tagOutput();
forwardApi();
listen();
