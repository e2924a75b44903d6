// kafkajs.test.mjs — kafkajs 2.2.4 (npm) against runneld's Kafka-protocol
// listener, under node's own test runner (node --test; run by run.sh, meson
// test `kafkajs`). One runneld for the file (broker.mjs), topics per test:
//   - produce with acks all, 1 and 0, keys, headers, gzip: `runnel consume`
//     reads every record back byte for byte;
//   - the admin client: createTopics with a config, createPartitions,
//     describeConfigs, fetchTopicMetadata, listGroups/describeGroups;
//   - consume from an offset (seek) and by time (ListOffsets with a
//     timestamp, as fetchTopicOffsetsByTimestamp asks it, then seek);
//   - a consumer group of two member processes (member.mjs): they split the
//     partitions, one is killed with SIGKILL, the other is given all of them
//     after the session timeout and reads on from the committed offsets;
//   - an idempotent producer through a broker restart (SIGTERM, a new
//     runneld on the same ports and data): one producer id, every record
//     stored once, in order, sequences without a gap.
// Every wait is bounded; every process started here is stopped by its pid.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Broker, waitFor } from './broker.mjs';

const { Kafka, logLevel, CompressionTypes } = createRequire(import.meta.url)('kafkajs');
const here = path.dirname(fileURLToPath(import.meta.url));

const broker = new Broker('js');
const children = new Set();

function client(extra = {}) {
  return new Kafka({
    clientId: 'runnel-kafkajs-test',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 2000 },
    ...extra,
  });
}

before(async () => {
  await broker.start();
});

// A graceful stop must exit 0 (in the sanitizer build: no report, no leak).
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  try {
    await broker.stop();
  } finally {
    await broker.cleanup();
  }
});

// consumeUntil(consumer, done, ms): runs the consumer, collecting each
// message ({partition, offset, key, value, timestamp, batchContext}) until
// done(got) holds; rejects after ms. The consumer is left running.
function consumeUntil(consumer, done, ms = 30000) {
  const got = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length} records`)), ms);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, ...message });
        if (done(got)) {
          clearTimeout(timer);
          resolve(got);
        }
      },
    }).catch(reject);
  });
}

test('produce with acks all, 1 and 0, keys, headers, gzip; runnel consume reads them', async () => {
  await broker.runnel('topic', 'create', 'jsp', '-p', '3');
  const p = client().producer();
  await p.connect();
  const want = [];
  for (const [acks, base] of [[-1, 0], [1, 30], [0, 60]]) {
    const messages = [];
    for (let i = base; i < base + 30; i++) {
      messages.push({ key: `k${i}`, value: `v${i}`, partition: i % 3, headers: { h: `x${i}` } });
      want.push(`${i % 3} k${i}=v${i} h=x${i}`);
    }
    const res = await p.send({ topic: 'jsp', messages, acks, compression: CompressionTypes.GZIP });
    if (acks !== 0) for (const r of res) assert.equal(r.errorCode, 0);
  }
  await p.disconnect();
  want.sort();
  // acks=0 has no answer to wait for: read until all 90 are there (bounded).
  let got;
  await waitFor('90 records in runnel consume', async () => {
    got = String(await broker.runnel('consume', 'jsp', '-o', 'beginning', '-e', '-f', '%p %k=%s %h\n'))
      .split('\n').filter(Boolean).sort();
    return got.length >= 90;
  });
  assert.deepEqual(got, want);
});

test('admin: createTopics with a config, createPartitions, describeConfigs, metadata', async () => {
  const a = client().admin();
  await a.connect();
  try {
    assert.equal(await a.createTopics({
      topics: [{ topic: 'jsadm', numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
    }), true);
    await a.createPartitions({ topicPartitions: [{ topic: 'jsadm', count: 3 }] });
    await assert.rejects(a.createPartitions({ topicPartitions: [{ topic: 'jsadm', count: 2 }] }),
      /INVALID_PARTITIONS|partitions/i);
    const d = await a.describeConfigs({ includeSynonyms: false,
      resources: [{ type: 2, name: 'jsadm', configNames: ['retention.ms'] }] });
    assert.equal(d.resources[0].errorCode, 0);
    assert.equal(d.resources[0].configEntries[0].configValue, '7200000');
    const md = await a.fetchTopicMetadata({ topics: ['jsadm'] });
    assert.equal(md.topics[0].partitions.length, 3);
    for (const part of md.topics[0].partitions) assert.equal(part.leader, 1);
  } finally {
    await a.disconnect();
  }
  const described = String(await broker.runnel('topic', 'describe', 'jsadm'));
  assert.equal(described.split('Partition:').length - 1, 3, described);
});

// 50 records in partition 0 of a new topic, timestamps base + 1000 * i.
async function fill(topic, base) {
  await broker.runnel('topic', 'create', topic, '-p', '1');
  const p = client().producer();
  await p.connect();
  const messages = [];
  for (let i = 0; i < 50; i++) messages.push({ value: `r${i}`, partition: 0, timestamp: String(base + 1000 * i) });
  await p.send({ topic, messages, acks: -1 });
  await p.disconnect();
}

test('consume from an offset: seek to 40 reads 40..49', async () => {
  await fill('jsoff', Date.now() - 100000);
  const c = client().consumer({ groupId: 'jsoff-g' });
  await c.connect();
  try {
    // Not from the beginning and nothing committed: the consumer starts at
    // the end, so every record it gets comes from the seek.
    await c.subscribe({ topic: 'jsoff', fromBeginning: false });
    const run = consumeUntil(c, (got) => got.length >= 10);
    c.seek({ topic: 'jsoff', partition: 0, offset: '40' });
    const got = await run;
    assert.deepEqual(got.map((m) => `${m.offset}:${m.value}`),
      Array.from({ length: 10 }, (_, i) => `${40 + i}:r${40 + i}`));
  } finally {
    await c.disconnect();
  }
});

test('consume by time: fetchTopicOffsetsByTimestamp (ListOffsets) then seek', async () => {
  const base = Date.now() - 100000;
  await fill('jstime', base);
  const a = client().admin();
  await a.connect();
  let at, latest, first;
  try {
    // The first record with a timestamp at or after the one asked.
    [at] = await a.fetchTopicOffsetsByTimestamp('jstime', base + 25500);
    [first] = await a.fetchTopicOffsetsByTimestamp('jstime', base - 5000);
    // None that recent: the broker answers -1, kafkajs takes the latest.
    [latest] = await a.fetchTopicOffsetsByTimestamp('jstime', base + 1000000);
  } finally {
    await a.disconnect();
  }
  assert.deepEqual(at, { partition: 0, offset: '26' });
  assert.deepEqual(first, { partition: 0, offset: '0' });
  assert.deepEqual(latest, { partition: 0, offset: '50' });
  const c = client().consumer({ groupId: 'jstime-g' });
  await c.connect();
  try {
    await c.subscribe({ topic: 'jstime', fromBeginning: false });
    const run = consumeUntil(c, (got) => got.length >= 24);
    c.seek({ topic: 'jstime', partition: 0, offset: at.offset });
    const got = await run;
    assert.deepEqual(got.map((m) => `${m.offset}:${m.value}:${m.timestamp}`),
      Array.from({ length: 24 }, (_, i) => `${26 + i}:r${26 + i}:${base + 1000 * (26 + i)}`));
  } finally {
    await c.disconnect();
  }
});

// A member process (member.mjs) and what it printed so far.
function member(topic, group) {
  const child = spawn(process.execPath, [path.join(here, 'member.mjs'), broker.bootstrap, topic, group],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const m = { child, assigned: null, joins: 0, records: [], commits: [], crash: null, stderr: '' };
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const o = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (o.assigned) {
        m.assigned = o.assigned;
        m.joins++;
      } else if (o.crash) m.crash = o.crash;
      else if ('c' in o) m.commits.push(o);
      else m.records.push(o);
    }
  });
  child.stderr.on('data', (d) => { m.stderr += d; });
  m.exit = new Promise((resolve) => child.on('exit', (code, sig) => {
    children.delete(child);
    resolve(sig || code);
  }));
  return m;
}

test('a group of two members: split, one killed with SIGKILL, the other takes over', async () => {
  await broker.runnel('topic', 'create', 'jsgrp', '-p', '4');
  const a = member('jsgrp', 'jsgrp-g');
  const b = member('jsgrp', 'jsgrp-g');
  const state = () => JSON.stringify({ a: [a.assigned, a.records.length, a.crash, a.stderr],
    b: [b.assigned, b.records.length, b.crash, b.stderr] });
  try {
    // Both in one generation: disjoint assignments covering the 4 partitions.
    await waitFor(`two members splitting 4 partitions ${state()}`, () => {
      if (!a.assigned || !b.assigned) return false;
      const all = [...a.assigned, ...b.assigned].sort();
      return all.length === 4 && all.every((p, i) => p === i);
    }, 60000);
    const p = client().producer();
    await p.connect();
    const send = async (lo, hi) => {
      const messages = [];
      for (let i = lo; i < hi; i++) messages.push({ value: `r${i}`, partition: i % 4 });
      await p.send({ topic: 'jsgrp', messages, acks: -1 });
    };
    const seen = (lo, hi) => {
      const s = new Set([...a.records, ...b.records].map((r) => r.v));
      for (let i = lo; i < hi; i++) if (!s.has(`r${i}`)) return false;
      return true;
    };
    await send(0, 200);
    await waitFor(`200 records consumed between the two ${state()}`, () => seen(0, 200), 60000);
    // Each member read only its own partitions.
    for (const m of [a, b]) for (const r of m.records) assert.ok(m.assigned.includes(r.p), state());
    const bParts = b.assigned;
    b.child.kill('SIGKILL');
    await b.exit;
    await send(200, 400);
    // B never left: the broker evicts it after its session timeout (6 s);
    // A rejoins and is given every partition, and reads on from the offsets
    // B committed (kafkajs commits at least at every rebalance).
    await waitFor(`A given all 4 partitions ${state()}`,
      () => a.assigned && a.assigned.length === 4, 60000);
    await waitFor(`A reading the 200 new records ${state()}`, () => seen(200, 400), 60000);
    const fromB = a.records.filter((r) => bParts.includes(r.p) && Number(r.v.slice(1)) >= 200);
    assert.equal(new Set(fromB.map((r) => r.v)).size, 50 * bParts.length, state());
    // Within each partition A reads in offset order.
    for (let part = 0; part < 4; part++) {
      const offs = a.records.filter((r) => r.p === part).map((r) => Number(r.o));
      for (let i = 1; i < offs.length; i++) assert.ok(offs[i] > offs[i - 1], `partition ${part}: ${offs}`);
    }
    const adm = client().admin();
    await adm.connect();
    try {
      const { groups } = await adm.describeGroups(['jsgrp-g']);
      assert.equal(groups[0].state, 'Stable');
      assert.equal(groups[0].members.length, 1);
      const { groups: listed } = await adm.listGroups();
      assert.ok(listed.some((g) => g.groupId === 'jsgrp-g' && g.protocolType === 'consumer'), JSON.stringify(listed));
    } finally {
      await adm.disconnect();
    }
    await p.disconnect();
    // A clean stop: LeaveGroup, exit 0.
    a.child.kill('SIGTERM');
    assert.equal(await a.exit, 0, state());
  } finally {
    for (const m of [a, b]) m.child.kill('SIGKILL');
  }
});

test('idempotent producer through a broker restart: one producer id, records once, in order', async () => {
  await broker.runnel('topic', 'create', 'jsidem', '-p', '1');
  const p = client().producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  const send = async (lo, hi) => {
    for (let i = lo; i < hi; i += 10) {
      const messages = [];
      for (let j = i; j < i + 10; j++) messages.push({ key: `k${j}`, value: `v${j}`, partition: 0 });
      const [res] = await p.send({ topic: 'jsidem', messages, acks: -1 });
      assert.equal(res.errorCode, 0);
    }
  };
  await send(0, 100);
  // SIGTERM, then a new runneld on the same ports and data: kafkajs
  // reconnects and goes on with its producer id and sequence, which the
  // broker rebuilt from its segments.
  await broker.restart();
  await send(100, 200);
  await p.disconnect();
  const want = Array.from({ length: 200 }, (_, i) => `k${i}=v${i}`).join('\n') + '\n';
  assert.equal(String(await broker.runnel('consume', 'jsidem', '-o', 'beginning', '-e', '-f', '%k=%s\n')), want);
  // Read back through kafkajs: every batch carries one producer id, its
  // first sequence equal to its first offset (no gap, nothing twice).
  const c = client().consumer({ groupId: 'jsidem-g' });
  await c.connect();
  try {
    await c.subscribe({ topic: 'jsidem', fromBeginning: true });
    const got = await consumeUntil(c, (g) => g.length >= 200);
    const pids = new Set(got.map((m) => m.batchContext.producerId));
    assert.equal(pids.size, 1, [...pids].join(','));
    assert.ok(Number([...pids][0]) >= 0);
    for (const m of got) assert.equal(String(m.batchContext.firstSequence), m.batchContext.firstOffset);
    assert.deepEqual(got.map((m) => Number(m.offset)), Array.from({ length: 200 }, (_, i) => i));
  } finally {
    await c.disconnect();
  }
});
