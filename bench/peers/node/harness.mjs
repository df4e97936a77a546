// The workload every npm peer script runs (bench/peers/node/<peer>.mjs), the
// same two scenarios as currant-bench and currant-bench-skip-locked:
//
// backlog  --jobs K: K no-op jobs are enqueued first (bulk calls of --chunk
//          jobs, timed as the prefill), then the peer's worker starts with
//          --workers concurrent jobs and drains them. Throughput counts the
//          completions after the first --warmup-percent of them, from the
//          moment that share had completed to the last completion.
// light    --rate R --duration S: the workers start idle; a separate producer
//          process (this script with --role producer) enqueues one job per
//          call at R jobs/s for S seconds; jobs in the first
//          --warmup-percent of the run are left out.
//
// Enqueue -> start: process.hrtime.bigint() (CLOCK_MONOTONIC, the same clock
// in every process of the host) stamped into the job's payload just before
// the enqueue call, subtracted from the same clock at the first line of the
// job's handler. Completion = the handler returned (the peer records it in
// its store afterwards; the script checks at the end that the store holds
// no unfinished job). CPU = this Node process (the workers, and the prefill
// in the backlog scenario, which is excluded), from process.cpuUsage(); the
// database or redis server's CPU is not included.
//
// Queries: the peer's queryCount() read when the workers start and when the
// last job has completed: statements its pg clients sent (graphile-worker,
// pg-boss; in the light scenario the producer process's are added), or
// commands redis processed (BullMQ, from the server's
// total_commands_processed, minus the reading command itself). Setup and the
// backlog's prefill are outside the window.
//
// A peer module exports { name, version(), setup(o), enqueueBulk(jobs),
// enqueueOne(job), startWorkers(o, handler), stopWorkers(), remaining(),
// openProducer(o), closeProducer(), teardown(), queryCount(), queryUnit,
// serverSideCount }. Output: one JSON object on
// stdout (--json) or a short table.
import { fork } from 'node:child_process';

export const clock = () => process.hrtime.bigint();

export function parseArgs(argv) {
  const o = {
    workers: 50, jobs: 0, warmupPercent: 10, rate: 0, duration: 0, chunk: 100,
    db: process.env.DATABASE_URL || '', redis: '', json: false, role: 'main', variant: '',
  };
  for (let i = 2; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--workers') o.workers = Number(next());
    else if (a === '--jobs') o.jobs = Number(next());
    else if (a === '--warmup-percent') o.warmupPercent = Number(next());
    else if (a === '--rate') o.rate = Number(next());
    else if (a === '--duration') o.duration = parseDuration(next());
    else if (a === '--chunk') o.chunk = Number(next());
    else if (a === '--db') o.db = next();
    else if (a === '--redis') o.redis = next();
    else if (a === '--variant') o.variant = next();
    else if (a === '--role') o.role = next();
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!(o.jobs > 0) === !(o.rate > 0 && o.duration > 0))
    throw new Error('give either --jobs K (backlog) or --rate R --duration S (light load)');
  return o;
}

function parseDuration(text) {
  const m = /^([0-9.]+)(ms|s|m)?$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * ({ ms: 1e-3, s: 1, m: 60 }[m[2] || 's']);
}

function quantileUs(sorted, q) {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return Number(sorted[Math.min(rank, sorted.length) - 1]) / 1e3;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Collects starts and completions; resolves `finished` when `expected` jobs
// have completed (expected may be set later, by the light-load producer).
class Recorder {
  constructor(warmJobs) {
    this.warmJobs = warmJobs;
    this.toStart = [];
    this.completions = [];  // clock() at each handler return
    this.expected = Infinity;
    this.finished = new Promise((resolve) => { this.resolve = resolve; });
  }
  handler() {
    return (payload) => {
      const started = clock();
      if (payload.s >= this.warmJobs) this.toStart.push(started - BigInt(payload.t));
      // The body is a no-op.
      this.completions.push(clock());
      if (this.completions.length >= this.expected) this.resolve();
    };
  }
  expect(n) {
    this.expected = n;
    if (this.completions.length >= n) this.resolve();
  }
}

async function producerMain(peer, o) {
  await peer.openProducer(o);
  const queriesBefore = peer.serverSideCount ? 0 : await peer.queryCount();
  process.send({ type: 'ready' });
  const go = await new Promise((resolve) => process.once('message', resolve));
  const start = BigInt(go.start);
  const total = Math.floor(o.rate * o.duration);
  let sent = 0;
  for (; sent < total; ++sent) {
    const due = start + BigInt(Math.round((sent * 1e9) / o.rate));
    for (let now = clock(); now < due; now = clock()) await sleep(Math.max(0, Number(due - now) / 1e6 - 0.05));
    await peer.enqueueOne({ s: sent, t: String(clock()) });
  }
  await peer.closeProducer();
  process.send({ type: 'done', sent, queries: peer.serverSideCount ? 0 : (await peer.queryCount()) - queriesBefore });
}

async function waitSettled(peer, seconds) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const left = await peer.remaining();
    if (left === 0 || Date.now() > until) return left;
    await sleep(20);
  }
}

export async function main(peer, scriptUrl) {
  const o = parseArgs(process.argv);
  if (o.role === 'producer') {
    await producerMain(peer, o);
    process.exit(0);
  }
  await peer.setup(o);
  const result = { system: peer.name + (o.variant ? `-${o.variant}` : '') };
  let recorder;
  let queriesBefore = 0, queries = 0;
  let cpuBefore;
  let startedAt;
  if (o.jobs > 0) {
    const warm = Math.floor((o.jobs * o.warmupPercent) / 100);
    recorder = new Recorder(warm);
    recorder.expect(o.jobs);
    const prefillStart = clock();
    for (let seq = 0; seq < o.jobs; seq += o.chunk) {
      const jobs = [];
      const t = String(clock());
      for (let s = seq; s < Math.min(o.jobs, seq + o.chunk); ++s) jobs.push({ s, t });
      await peer.enqueueBulk(jobs);
    }
    result.prefill_seconds = Number(clock() - prefillStart) / 1e9;
    result.prefill_jobs_per_second = o.jobs / result.prefill_seconds;
    cpuBefore = process.cpuUsage();
    startedAt = clock();
    queriesBefore = await peer.queryCount();
    await peer.startWorkers(o, recorder.handler());
    await recorder.finished;
    queries = (await peer.queryCount()) - queriesBefore - (peer.serverSideCount ? 1 : 0);
    const c = recorder.completions;
    const from = c[warm];  // the moment the warm-up share had completed
    const last = c[c.length - 1];
    result.window_seconds = Number(last - from) / 1e9;
    result.jobs_per_second = result.window_seconds > 0 ? (c.length - warm - 1) / result.window_seconds : 0;
  } else {
    const total = Math.floor(o.rate * o.duration);
    recorder = new Recorder(Math.floor((total * o.warmupPercent) / 100));
    await peer.startWorkers(o, recorder.handler());
    await sleep(1000);  // idle workers: let them reach their wait
    const child = fork(new URL(scriptUrl).pathname, [...process.argv.slice(2), '--role', 'producer'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const messages = [];
    let wake = null;
    child.on('message', (m) => { messages.push(m); if (wake) wake(); });
    const childExit = new Promise((resolve) => child.on('exit', resolve));
    const nextMessage = async () => {
      while (messages.length === 0) {
        await Promise.race([new Promise((resolve) => { wake = resolve; }), childExit.then(() => {
          if (messages.length === 0) throw new Error('the producer process ended early');
        })]);
      }
      return messages.shift();
    };
    if ((await nextMessage()).type !== 'ready') throw new Error('producer did not start');
    cpuBefore = process.cpuUsage();
    startedAt = clock();
    queriesBefore = await peer.queryCount();
    child.send({ start: String(startedAt) });
    const done = await nextMessage();
    recorder.expect(done.sent);
    await recorder.finished;
    queries = (await peer.queryCount()) - queriesBefore - (peer.serverSideCount ? 1 : 0) + done.queries;
    await childExit;
    result.jobs_per_second = 0;
    result.window_seconds = 0;
    result.offered_rate = o.rate;
  }
  const endedAt = clock();
  const cpu = process.cpuUsage(cpuBefore);
  const jobs = recorder.completions.length;
  const sorted = recorder.toStart.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  result.to_start_p50_us = quantileUs(sorted, 0.5);
  result.to_start_p95_us = quantileUs(sorted, 0.95);
  result.to_start_p99_us = quantileUs(sorted, 0.99);
  result['to_start_p99.9_us'] = quantileUs(sorted, 0.999);
  result.to_start_max_us = quantileUs(sorted, 1);
  result.cpu_seconds_per_million = jobs ? ((cpu.user + cpu.system) / 1e6) * (1e6 / jobs) : 0;
  result.queries = queries;
  result.query_unit = peer.queryUnit;
  result.queries_per_job = jobs ? queries / jobs : 0;
  result.jobs = jobs;
  result.measured_jobs = sorted.length;
  result.seconds = Number(endedAt - startedAt) / 1e9;
  result.unfinished_in_store = await waitSettled(peer, 10);
  await peer.stopWorkers();
  await peer.teardown();
  const config = {
    workers: o.workers, jobs: o.jobs, warmup_percent: o.warmupPercent, rate: o.rate,
    duration_seconds: o.duration, chunk: o.chunk, variant: o.variant,
  };
  const out = { bench: 'peer', system: result.system, version: peer.version(), config, results: [result] };
  if (o.json) console.log(JSON.stringify(out));
  else {
    console.log(`${result.system} ${peer.version()}: ${JSON.stringify(config)}`);
    for (const [k, v] of Object.entries(result)) if (k !== 'system') console.log(`${k.padEnd(28)} ${typeof v === 'number' ? v.toFixed(1) : v}`);
  }
  if (result.unfinished_in_store !== 0) {
    console.error(`${result.system}: ${result.unfinished_in_store} jobs still unfinished in the store`);
    process.exit(1);
  }
  process.exit(0);
}
