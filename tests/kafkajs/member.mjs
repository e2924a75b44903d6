// member.mjs — one kafkajs consumer-group member in a process of its own, so
// that kafkajs.test.mjs can kill it with SIGKILL (a member that vanishes
// without LeaveGroup):  node member.mjs BOOTSTRAP TOPIC GROUP [DELAY_MS]
// BOOTSTRAP is one HOST:PORT or a comma list (a cluster: kafkajs skips the
// dead ones); DELAY_MS, when given, is slept after each record, so a test
// can kill something while the member is still reading.
//
// Prints one JSON object a line on stdout:
//   {"assigned":[0,2]}          after each join (kafkajs's GROUP_JOIN event)
//   {"p":1,"o":"7","v":"r7"}    each record consumed (auto-committed)
//   {"c":1,"o":"8"}             an offset committed (COMMIT_OFFSETS event)
//   {"crash":"…"}               kafkajs gave up
// SIGTERM disconnects (LeaveGroup) and exits 0. A short session timeout, so
// the broker evicts a killed member quickly.
import { createRequire } from 'node:module';
const { Kafka, logLevel } = createRequire(import.meta.url)('kafkajs');

const [bootstrap, topic, group, delay] = process.argv.slice(2);
const delayMs = Number(delay || 0);
const kafka = new Kafka({
  clientId: 'runnel-member',
  brokers: bootstrap.split(','),
  logLevel: logLevel.NOTHING,
  retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 2000 },
});
const c = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500,
  rebalanceTimeout: 20000 });
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
c.on(c.events.GROUP_JOIN, (e) => out({ assigned: (e.payload.memberAssignment[topic] || []).sort() }));
c.on(c.events.COMMIT_OFFSETS, (e) => {
  for (const t of e.payload.topics) for (const p of t.partitions) out({ c: Number(p.partition), o: p.offset });
});
c.on(c.events.CRASH, (e) => out({ crash: String(e.payload.error) }));
process.on('SIGTERM', async () => {
  await c.disconnect().catch(() => {});
  process.exit(0);
});
await c.connect();
await c.subscribe({ topic, fromBeginning: true });
await c.run({
  eachMessage: async ({ partition, message }) => {
    out({ p: partition, o: message.offset, v: String(message.value) });
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
  },
});
