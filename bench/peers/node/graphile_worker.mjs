// graphile-worker driven by bench/peers/node/harness.mjs.
// --variant batched turns on its batching (a local queue of 500 jobs fetched
// per query, completions sent in batches: localQueue.size 500,
// completeJobBatchDelay 0, failJobBatchDelay 0); without it, defaults.
// Concurrency = --workers in one Node process, pool of max(10, workers + 2)
// connections (the size its documentation recommends).
import { main } from './harness.mjs';
import { pgQueryCount, requirePeer, versionOf } from './peers.mjs';

pgQueryCount();  // count from the first connection on

const { run, makeWorkerUtils, Logger } = requirePeer('graphile-worker');
const quiet = new Logger(() => (level, message) => {
  if (level === 'error') console.error(`graphile-worker: ${message}`);
});
let utils = null, runner = null, producerUtils = null;

const peer = {
  queryUnit: 'PostgreSQL statements',
  serverSideCount: false,
  queryCount: async () => pgQueryCount(),
  name: 'graphile-worker',
  version: () => versionOf('graphile-worker'),
  async setup(o) {
    utils = await makeWorkerUtils({ connectionString: o.db, logger: quiet });
    await utils.migrate();
    await utils.withPgClient((c) => c.query('delete from graphile_worker._private_jobs'));
  },
  async enqueueBulk(jobs) {
    await utils.addJobs(jobs.map((payload) => ({ identifier: 'bench', payload })));
  },
  async openProducer(o) {
    producerUtils = await makeWorkerUtils({ connectionString: o.db, logger: quiet });
  },
  async enqueueOne(payload) {
    await producerUtils.addJob('bench', payload);
  },
  async closeProducer() {
    await producerUtils.release();
  },
  async startWorkers(o, handler) {
    const preset = o.variant === 'batched'
      ? { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } }
      : undefined;
    runner = await run({
      connectionString: o.db,
      concurrency: o.workers,
      maxPoolSize: Math.max(10, o.workers + 2),
      noHandleSignals: true,
      logger: quiet,
      preset,
      taskList: { bench: async (payload) => handler(payload) },
    });
  },
  async remaining() {
    const r = await utils.withPgClient((c) => c.query('select count(*)::int as n from graphile_worker.jobs'));
    return r.rows[0].n;
  },
  async stopWorkers() {
    if (runner) await runner.stop();
  },
  async teardown() {
    await utils.release();
  },
};

await main(peer, import.meta.url);
