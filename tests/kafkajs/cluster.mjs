// cluster.mjs — three real runneld brokers in one metadata quorum, for the
// kafkajs cluster tests (cluster.test.mjs; meson test `kafkajs_cluster`).
//
// Each node is a Broker (broker.mjs) with its own data directory and free
// 127.0.0.1 ports, started with --node-id N, its controller listener and the
// same controller.quorum.voters, and short timeouts (as tests/cluster/lib.sh:
// they decide only how soon things move, never what is safe). start()
// resolves once every Kafka port accepts and the quorum has three active
// brokers; kill9(n) and revive(n) take one node down and bring it back on
// its ports and data; allUp() revives whatever is down. leaderOf(topic, partition) reads the leader from
// `runnel topic describe` on a live node. Every wait is bounded.
import { Broker, freePort, waitFor } from './broker.mjs';

const TIMING = [
  '--override', 'controller.quorum.election.timeout.ms=500',
  '--override', 'controller.quorum.fetch.timeout.ms=1000',
  '--override', 'broker.heartbeat.interval.ms=300',
  '--override', 'broker.session.timeout.ms=2000',
];

export class Cluster {
  constructor(name) {
    this.nodes = [1, 2, 3].map((n) => new Broker(`${name}-n${n}`));
  }

  get bootstrap() {
    return this.nodes.map((b) => b.bootstrap);
  }

  args(i) {
    const voters = this.nodes.map((b, j) => `${j + 1}@127.0.0.1:${b.ctl}`).join(',');
    return ['--node-id', String(i + 1), '--override', `controller.listener=127.0.0.1:${this.nodes[i].ctl}`,
      '--override', `controller.quorum.voters=${voters}`, ...TIMING];
  }

  async start() {
    // Every port chosen before any node starts: the voters list names them all.
    for (const b of this.nodes) {
      b.port = await freePort();
      b.http = await freePort();
      b.kport = await freePort();
      b.ctl = await freePort();
    }
    await Promise.all(this.nodes.map((b, i) => b.start(true, ['--reactors', '1', ...this.args(i)])));
    await waitFor('three active brokers', async () => (await this.active()) === 3, 60000);
  }

  live() {
    return this.nodes.filter((b) => b.child);
  }

  // How many brokers `cluster status` on a live node calls active.
  async active() {
    try {
      const out = String(await this.live()[0].runnel('cluster', 'status'));
      let table = false;
      let n = 0;
      for (const line of out.split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f[0] === 'BROKER') table = true;
        else if (table && f[3] === 'active') n++;
      }
      return n;
    } catch {
      return 0;
    }
  }

  // The partition's describe line as a live node sees it: {Leader, Replicas, Isr, ...}.
  async describe(topic, partition = 0) {
    for (const b of this.live()) {
      try {
        const out = String(await b.runnel('topic', 'describe', topic));
        // A partition line: "\tTopic: T\tPartition: P\tLeader: L\t...\tIsr: 1,2,3".
        for (const line of out.split('\n')) {
          const d = {};
          for (const kv of line.split('\t')) {
            const m = kv.trim().match(/^(\w+): ?(.*)$/);
            if (m) d[m[1]] = m[2];
          }
          if (d.Topic === topic && d.Partition === String(partition)) return d;
        }
      } catch {
        // try the next live node
      }
    }
    return null;
  }

  // The live leader of topic-partition (a node number), once every live node agrees.
  async leaderOf(topic, partition = 0, not = 0) {
    return waitFor(`a live leader of ${topic}-${partition}`, async () => {
      const d = await this.describe(topic, partition);
      const l = d && Number(d.Leader);
      return l > 0 && l !== not && this.nodes[l - 1].child ? l : 0;
    }, 60000);
  }

  async inSync(topic, partition, isr) {
    return waitFor(`${topic}-${partition} ISR ${isr}`, async () => {
      const d = await this.describe(topic, partition);
      return d && d.Isr && d.Isr.split(',').map(Number).sort().join(',') === isr;
    }, 60000);
  }

  runnel(...args) {
    return this.live()[0].runnel(...args);
  }

  async kill9(n) {
    await this.nodes[n - 1].kill9();
  }

  async revive(n) {
    await this.nodes[n - 1].start(true, ['--reactors', '1', ...this.args(n - 1)]);
  }

  // Every node running and three active brokers (after a test that failed
  // with a node down, the next one starts from a whole cluster).
  async allUp() {
    for (let n = 1; n <= 3; n++) if (!this.nodes[n - 1].child) await this.revive(n);
    await waitFor('three active brokers', async () => (await this.active()) === 3, 60000);
  }

  async stop() {
    for (const b of this.live()) await b.stop();
  }

  async cleanup() {
    for (const b of this.nodes) await b.cleanup();
  }

  tail() {
    return this.nodes.map((b, i) => `--- node ${i + 1}\n${b.tail(8)}`).join('\n');
  }
}
