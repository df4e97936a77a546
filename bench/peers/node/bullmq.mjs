// BullMQ (against a redis-server) driven by bench/peers/node/harness.mjs.
// One Worker with concurrency --workers; jobs added with removeOnComplete
// (finished jobs are deleted, as currant's memory mode keeps nothing);
// --redis takes a unix socket path or host:port.
import { main } from './harness.mjs';
import { requirePeer, versionOf } from './peers.mjs';

const { Queue, Worker } = requirePeer('bullmq');
const Redis = requirePeer('ioredis');
let queue = null, worker = null, producerQueue = null, stats = null;
const name = 'bench';
const jobOptions = { removeOnComplete: true, removeOnFail: true };

function connection(o) {
  const target = o.redis || '127.0.0.1:6379';
  if (target.startsWith('/')) return { path: target, maxRetriesPerRequest: null };
  const [host, port] = target.split(':');
  return { host, port: Number(port), maxRetriesPerRequest: null };
}

const peer = {
  queryUnit: 'redis commands',
  serverSideCount: true,
  async queryCount() {
    const info = await stats.info('stats');
    return Number(/total_commands_processed:(\d+)/.exec(info)[1]);
  },
  name: 'bullmq',
  version: () => versionOf('bullmq'),
  async setup(o) {
    queue = new Queue(name, { connection: connection(o) });
    await queue.waitUntilReady();
    stats = new (Redis.default || Redis)(connection(o));  // for INFO only
    await queue.obliterate({ force: true });
  },
  async enqueueBulk(jobs) {
    await queue.addBulk(jobs.map((data) => ({ name, data, opts: jobOptions })));
  },
  async openProducer(o) {
    producerQueue = new Queue(name, { connection: connection(o) });
    await producerQueue.waitUntilReady();
  },
  async enqueueOne(data) {
    await producerQueue.add(name, data, jobOptions);
  },
  async closeProducer() {
    await producerQueue.close();
  },
  async startWorkers(o, handler) {
    worker = new Worker(name, async (job) => handler(job.data), { connection: connection(o), concurrency: o.workers });
    worker.on('error', (e) => console.error(`bullmq: ${e.message}`));
    await worker.waitUntilReady();
  },
  async remaining() {
    const c = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'paused');
    return Object.values(c).reduce((a, b) => a + b, 0);
  },
  async stopWorkers() {
    await worker.close();
  },
  async teardown() {
    await queue.close();
    stats.disconnect();
  },
};

await main(peer, import.meta.url);
