// clients.mjs — kafkajs 2.2.4 against runneld's Kafka listener, run by
// tests/cli/test_kafka_clients.sh: node clients.mjs PORT TOPIC MODE
//   produce  an idempotent producer (InitProducerId, sequences) writes 50
//            keyed records to TOPIC partition 0 and prints "produced N"
//   consume  a consumer group reads them back from the beginning and prints
//            each as key=value (needs the group APIs: FindCoordinator, …)
//   admin    creates TOPIC with 1 partition, grows it to 3 (CreatePartitions),
//            reads its retention.ms and the partition count back
//            (DescribeConfigs, Metadata) and prints "retention.ms=V partitions=N"
// Exits non-zero on any error; every wait is bounded.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { Kafka, logLevel } = require('kafkajs');

const [port, topic, mode] = process.argv.slice(2);
const kafka = new Kafka({
  clientId: 'runnel-test',
  brokers: [`127.0.0.1:${port}`],
  logLevel: logLevel.ERROR,
  retry: { retries: 3 },
  connectionTimeout: 5000,
  requestTimeout: 10000,
});
const N = 50;

async function produce() {
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  let n = 0;
  for (let i = 0; i < N; i += 10) {
    const messages = [];
    for (let j = i; j < i + 10; j++) messages.push({ key: `k${j}`, value: `v${j}`, partition: 0 });
    const res = await p.send({ topic, messages, acks: -1 });
    if (res[0].errorCode !== 0) throw new Error(`produce error ${res[0].errorCode}`);
    n += messages.length;
  }
  await p.disconnect();
  console.log(`produced ${n}`);
}

async function consume() {
  const c = kafka.consumer({ groupId: `g-${topic}`, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length} records`)), 30000);
    c.run({
      eachMessage: async ({ message }) => {
        got.push(`${message.key}=${message.value}`);
        if (got.length === N) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await c.disconnect();
  for (const g of got) console.log(g);
}

async function admin() {
  const a = kafka.admin();
  await a.connect();
  await a.createTopics({ topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '7200000' }] }] });
  await a.createPartitions({ topicPartitions: [{ topic, count: 3 }] });
  const d = await a.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: topic, configNames: ['retention.ms'] }] });
  const r = d.resources[0];
  if (r.errorCode !== 0) throw new Error(`describeConfigs error ${r.errorCode}`);
  const md = await a.fetchTopicMetadata({ topics: [topic] });
  await a.disconnect();
  console.log(`retention.ms=${r.configEntries[0].configValue} partitions=${md.topics[0].partitions.length}`);
}

try {
  await ({ produce, consume, admin }[mode])();
  process.exit(0);
} catch (e) {
  console.error(`kafkajs ${mode}: ${e.stack || e}`);
  process.exit(1);
}
