// pg-boss driven by bench/peers/node/harness.mjs. Concurrency = --workers
// calls of boss.work() (pg-boss 10 has no team size: each work() is one
// fetch loop), batchSize 1, pollingIntervalSeconds 0.5 (the smallest it
// accepts; its default is 2: pg-boss polls, it has no LISTEN/NOTIFY), pool
// of workers + 2 connections; everything else its defaults. A work() loop
// waits out the rest of the polling interval after every fetch, even one
// that returned jobs, so with batchSize 1 each loop runs at most 2 jobs/s.
// --variant batched: batchSize 100 (one fetch hands up to 100 jobs to the
// handler, which runs them in turn; pg-boss completes them together).
import { main } from './harness.mjs';
import { pgQueryCount, requirePeer, versionOf } from './peers.mjs';

pgQueryCount();  // count from the first connection on

const PgBoss = requirePeer('pg-boss');
let boss = null, producer = null;
const queue = 'bench';

const peer = {
  queryUnit: 'PostgreSQL statements',
  serverSideCount: false,
  queryCount: async () => pgQueryCount(),
  name: 'pg-boss',
  version: () => versionOf('pg-boss'),
  async setup(o) {
    boss = new PgBoss({ connectionString: o.db, max: o.workers + 2 });
    boss.on('error', (e) => console.error(`pg-boss: ${e.message}`));
    await boss.start();
    await boss.deleteQueue(queue).catch(() => {});
    await boss.createQueue(queue);
  },
  async enqueueBulk(jobs) {
    await boss.insert(jobs.map((data) => ({ name: queue, data })));
  },
  async openProducer(o) {
    producer = new PgBoss({ connectionString: o.db, max: 2, supervise: false, schedule: false, migrate: false });
    producer.on('error', (e) => console.error(`pg-boss producer: ${e.message}`));
    await producer.start();
  },
  async enqueueOne(data) {
    await producer.send(queue, data);
  },
  async closeProducer() {
    await producer.stop({ graceful: false, wait: false });
  },
  async startWorkers(o, handler) {
    const batchSize = o.variant === 'batched' ? 100 : 1;
    for (let i = 0; i < o.workers; ++i)
      await boss.work(queue, { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
        for (const job of jobs) handler(job.data);
      });
  },
  async remaining() {
    const r = await boss.getDb().executeSql(
      "select count(*)::int as n from pgboss.job where name = $1 and state in ('created', 'retry', 'active')", [queue]);
    return r.rows[0].n;
  },
  async stopWorkers() {
    await boss.offWork(queue);
  },
  async teardown() {
    await boss.stop({ graceful: false, wait: false });
  },
};

await main(peer, import.meta.url);
