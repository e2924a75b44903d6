// broker.mjs — a real runneld for the kafkajs tests (tests/kafkajs/*.test.mjs).
//
// start() runs runneld from $RUNNELD on free 127.0.0.1 ports (native, HTTP and
// Kafka listeners, two reactors) with its data under a mktemp directory, and
// resolves once the Kafka port accepts (at most 10 s; retried with new ports
// if one was taken in between). stop() is SIGTERM by the pid and requires exit
// status 0 (a graceful stop); restart() starts it again on the same ports and
// data, so connected clients find it where it was. runnel() runs $RUNNEL with
// RUNNEL_BROKERS pointing at it and a 30 s bound. Every wait is bounded.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const RUNNELD = process.env.RUNNELD;
export const RUNNEL = process.env.RUNNEL;
if (!RUNNELD || !RUNNEL) throw new Error('RUNNELD and RUNNEL must name the binaries (tests/kafkajs/run.sh sets them)');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// waitFor(what, fn, ms): polls fn (sync or async) every 50 ms until it returns
// a truthy value, which it resolves with; rejects naming `what` after ms (a
// function is called then, so the message holds the state at the time out).
export async function waitFor(what, fn, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await sleep(50);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port });
    const done = (v) => {
      c.destroy();
      resolve(v);
    };
    c.setTimeout(200, () => done(false));
    c.on('connect', () => done(true));
    c.on('error', () => done(false));
  });
}

export class Broker {
  constructor(name) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), `rn-kafkajs-${name}-`));
    this.log = path.join(this.dir, 'runneld.log');
    this.child = null;
  }

  get bootstrap() {
    return `127.0.0.1:${this.kport}`;
  }

  async start(keepPorts = false, extra = []) {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!keepPorts || !this.kport) {
        this.port = await freePort();
        this.http = await freePort();
        this.kport = await freePort();
      }
      const fd = openSync(this.log, 'a');
      const child = spawn(RUNNELD, ['--data-dir', path.join(this.dir, 'data'),
        '--listen', `127.0.0.1:${this.port}`, '--http', `127.0.0.1:${this.http}`,
        '--kafka', `127.0.0.1:${this.kport}`, '--reactors', '2', ...extra],
      { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      let exited = false;
      child.exitStatus = new Promise((resolve) => child.on('exit', (code, sig) => {
        exited = true;
        resolve(sig ? sig : code);
      }));
      this.child = child;
      const deadline = Date.now() + 10000;
      while (!exited && Date.now() < deadline) {
        if (await portOpen(this.kport)) return;
        await sleep(50);
      }
      await this.kill9();
      if (keepPorts) break; // the same ports again would fail the same way
    }
    throw new Error(`runneld did not start:\n${this.tail()}`);
  }

  async stop() {
    if (!this.child) return;
    const child = this.child;
    this.child = null;
    child.kill('SIGTERM');
    const st = await child.exitStatus;
    if (st !== 0) throw new Error(`runneld exited with ${st}:\n${this.tail()}`);
  }

  async kill9() {
    if (!this.child) return;
    const child = this.child;
    this.child = null;
    child.kill('SIGKILL');
    await child.exitStatus;
  }

  async restart() {
    await this.stop();
    await this.start(true);
  }

  // The end of runneld's log, for a failure message.
  tail(n = 20) {
    try {
      return readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '(no log)';
    }
  }

  // runnel(args…): the runnel CLI's stdout (a Buffer); rejects with its
  // stderr when it exits non-zero or runs past 30 s.
  runnel(...args) {
    return new Promise((resolve, reject) => {
      execFile(RUNNEL, args, {
        env: { ...process.env, RUNNEL_BROKERS: `127.0.0.1:${this.port}` },
        encoding: 'buffer', timeout: 30000, maxBuffer: 64 << 20,
      }, (err, stdout, stderr) => {
        if (err) reject(new Error(`runnel ${args.join(' ')}: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
  }

  async cleanup() {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
