// cluster.test.mjs — kafkajs 2.2.4 against a three-broker runnel cluster
// (cluster.mjs) whose leaders are killed -9 mid-run (issue 15: "on a
// three-broker cluster with a leader killed mid-run"); run by run.sh under
// node's test runner, meson test `kafkajs_cluster` (suite cluster).
//   - an idempotent producer sending to an RF=3, min.insync.replicas=2 topic
//     while the partition's leader is killed -9: every send resolves, and the
//     partition holds each record once, in order (kafkajs followed the new
//     leader; its retries were answered from the replicated producer state);
//   - a consumer group reading the same partition from the beginning while
//     the new leader is killed -9 too (the first one back): every offset
//     read, each with the value produced there, and reading after the kill
//     never starts below the offset the group had committed before it.
// Every wait is bounded; every process started here is stopped by its pid.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { Cluster } from './cluster.mjs';
import { waitFor } from './broker.mjs';

const { Kafka, logLevel } = createRequire(import.meta.url)('kafkajs');

const cluster = new Cluster('jsc');

function client() {
  return new Kafka({
    clientId: 'runnel-kafkajs-cluster-test',
    brokers: cluster.bootstrap,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 30, initialRetryTime: 100, maxRetryTime: 1000 },
  });
}

before(async () => {
  await cluster.start();
});

after(async () => {
  try {
    await cluster.stop();
  } finally {
    await cluster.cleanup();
  }
});

const N = 5000;
const BATCH = 50;
const want = Array.from({ length: N }, (_, i) => `v${i}`);

test('idempotent producer: the leader killed -9 mid-run, every record once, in order', async () => {
  await cluster.runnel('topic', 'create', 'jsfail', '-p', '1', '-r', '3', '-c', 'min.insync.replicas=2');
  await cluster.inSync('jsfail', 0, '1,2,3');
  const leader = await cluster.leaderOf('jsfail');
  const p = client().producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  let killed = null;
  try {
    for (let i = 0; i < N; i += BATCH) {
      // A third of the way in, the leader dies while the next send is on its way.
      if (i === BATCH * 30) killed = cluster.kill9(leader);
      const messages = want.slice(i, i + BATCH).map((value) => ({ value, partition: 0 }));
      const [res] = await p.send({ topic: 'jsfail', messages, acks: -1 });
      assert.equal(res.errorCode, 0);
    }
    await killed;
  } finally {
    await p.disconnect();
  }
  const got = String(await cluster.runnel('consume', 'jsfail', '-p', '0', '-e', '-f', '%s\n'));
  assert.deepEqual(got.split('\n').filter(Boolean), want, cluster.tail());
  await cluster.revive(leader);
  await cluster.inSync('jsfail', 0, '1,2,3');
});

test('consumer: the leader killed -9 while it reads, every record once, in offset order', async () => {
  const leader = await cluster.leaderOf('jsfail');
  const c = client().consumer({ groupId: 'jsfail-g', sessionTimeout: 10000, heartbeatInterval: 500,
    maxWaitTimeInMs: 200, maxBytesPerPartition: 16 * 1024 });
  await c.connect();
  const got = [];
  const offsets = new Set();
  let killed = null;
  // The highest offset the coordinator acknowledged committing (kafkajs
  // reports each commit that succeeded), and what it was at the kill.
  let committed = -1;
  let committedAtKill = -1;
  let afterKill = Infinity;
  c.on(c.events.COMMIT_OFFSETS, (e) => {
    for (const t of e.payload.topics) for (const p of t.partitions) committed = Math.max(committed, Number(p.offset));
  });
  try {
    await c.subscribe({ topic: 'jsfail', fromBeginning: true });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${got.length} records\n${cluster.tail()}`)), 90000);
      c.run({
        eachMessage: async ({ message }) => {
          got.push({ o: Number(message.offset), v: String(message.value) });
          offsets.add(Number(message.offset));
          if (killed) afterKill = Math.min(afterKill, Number(message.offset));
          if (offsets.size === N / 2 && !killed) {
            committedAtKill = committed;
            killed = cluster.kill9(leader);
          }
          if (offsets.size >= N) {
            clearTimeout(timer);
            resolve();
          }
        },
      }).catch(reject);
    });
    await killed;
  } finally {
    await c.disconnect();
  }
  // After the kill the group's new coordinator (the leader of __offsets-0, the
  // killed broker led it too here, or not) must know every commit it had
  // acknowledged: reading starts again at that offset or later, never before
  // (a coordinator that forgot commits starts the group over from 0). What was
  // read after the last acknowledged commit comes again: at-least-once.
  assert.ok(committedAtKill > 0, `no commit acknowledged before the kill (${committedAtKill})`);
  assert.ok(afterKill >= committedAtKill,
    `read again from ${afterKill}, below the offset ${committedAtKill} committed before the kill\n${cluster.tail()}`);
  const byOffset = new Map();
  for (const r of got) {
    if (byOffset.has(r.o)) assert.equal(byOffset.get(r.o), r.v);
    byOffset.set(r.o, r.v);
  }
  assert.equal(byOffset.size, N);
  for (let i = 0; i < N; i++) assert.equal(byOffset.get(i), want[i]);
  await cluster.revive(leader);
  await cluster.inSync('jsfail', 0, '1,2,3');
  await waitFor('three active brokers', async () => (await cluster.active()) === 3, 60000);
});
