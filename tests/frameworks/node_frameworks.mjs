// BullMQ, node-redlock and rate-limiter-flexible against two replicas of one mesh: the
// producer talks to one replica, the worker to the other. Every result is checked; the last
// line is "node: N passed, M failed".
//
//   node node_frameworks.mjs <producer port> <worker port>

import { Queue, Worker, QueueEvents } from "bullmq";
import IORedis from "ioredis";
import Redlock from "redlock";
import { RateLimiterRedis } from "rate-limiter-flexible";

const [producerPort, workerPort] = process.argv.slice(2).map(Number);
const conn = (port) => new IORedis({ port, host: "127.0.0.1", maxRetriesPerRequest: null });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let passed = 0;
let failed = 0;
function check(name, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`PASS ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name} ${detail}`);
  }
}

async function until(pred, timeoutMs, what) {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await pred()) return true;
    await sleep(50);
  }
  console.log(`timed out after ${timeoutMs} ms waiting for ${what}`);
  return false;
}

async function bullmq() {
  const name = `jobs-${process.pid}`;
  const producer = conn(producerPort);
  const queue = new Queue(name, { connection: producer });
  const events = new QueueEvents(name, { connection: conn(producerPort) });
  await events.waitUntilReady();
  const ran = new Map(); // job id -> times run
  const attempts = new Map();
  const worker = new Worker(
    name,
    async (job) => {
      ran.set(job.id, (ran.get(job.id) || 0) + 1);
      if (job.name === "flaky") {
        const n = (attempts.get(job.id) || 0) + 1;
        attempts.set(job.id, n);
        if (n < 3) throw new Error(`attempt ${n} fails`);
        return { attempts: n };
      }
      if (job.name === "tick") return "tick";
      return { doubled: job.data.n * 2, at: Date.now() };
    },
    { connection: conn(workerPort), concurrency: 4 },
  );
  await worker.waitUntilReady();

  // Plain jobs: added on one replica, processed on the other, results read back.
  const jobs = await queue.addBulk(Array.from({ length: 50 }, (_, n) => ({ name: "double", data: { n } })));
  const done = await until(async () => (await queue.getCompletedCount()) >= 50, 30000, "50 completed jobs");
  check("bullmq: 50 jobs added on one replica complete on the other", done);
  let right = 0;
  for (const [n, j] of jobs.entries()) {
    const job = await queue.getJob(j.id);
    if (job && job.returnvalue && job.returnvalue.doubled === n * 2) right++;
  }
  check("bullmq: every job's return value arrives back", right === 50, `${right}/50`);
  check("bullmq: no job ran twice (one worker)", jobs.every((j) => ran.get(j.id) === 1));

  // A delayed job waits for its delay.
  const addedAt = Date.now();
  const delayed = await queue.add("double", { n: 21 }, { delay: 1500 });
  check("bullmq: the delayed job is delayed", (await delayed.getState()) === "delayed");
  const delayedDone = await until(async () => (await queue.getJob(delayed.id))?.finishedOn, 20000, "the delayed job");
  const job = await queue.getJob(delayed.id);
  check("bullmq: the delayed job runs after its delay",
    delayedDone && job.returnvalue.doubled === 42 && job.processedOn - addedAt >= 1400,
    `processed ${job?.processedOn - addedAt} ms after being added`);

  // Retries with backoff: fails twice, succeeds the third time.
  const flaky = await queue.add("flaky", {}, { attempts: 3, backoff: { type: "fixed", delay: 300 } });
  const flakyDone = await until(async () => (await queue.getJob(flaky.id))?.finishedOn, 20000, "the flaky job");
  const f = await queue.getJob(flaky.id);
  check("bullmq: a failing job is retried with backoff until it succeeds",
    flakyDone && f.attemptsMade === 3 && f.returnvalue?.attempts === 3 && f.finishedOn - f.timestamp >= 600,
    `attemptsMade=${f?.attemptsMade} returnvalue=${JSON.stringify(f?.returnvalue)}`);

  // Repeatable jobs.
  await queue.upsertJobScheduler("every-400ms", { every: 400 }, { name: "tick" });
  await sleep(2600);
  await queue.removeJobScheduler("every-400ms");
  const ticks = (await queue.getCompleted(0, 500)).filter((j) => j.name === "tick").length;
  check("bullmq: a repeatable job repeats", ticks >= 4 && ticks <= 9, `${ticks} runs in 2.6 s every 400 ms`);
  const schedulers = await queue.getJobSchedulers();
  check("bullmq: a removed scheduler is gone", schedulers.length === 0, JSON.stringify(schedulers));

  await worker.close();
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
}

async function redlock() {
  const a = conn(producerPort);
  const b = conn(workerPort);
  const onA = new Redlock([a], { retryCount: 0 });
  const onB = new Redlock([b], { retryCount: 0 });
  const resource = `locks:${process.pid}`;
  const lock = await onA.acquire([resource], 5000);
  check("redlock: acquired on one replica", !!lock);
  // Once the lock has reached the other replica, a second holder is refused there.
  await until(async () => (await b.get(resource)) === lock.value, 5000, "the lock on the peer");
  let refused = false;
  try {
    await onB.acquire([resource], 5000);
  } catch (e) {
    refused = true;
  }
  check("redlock: a second holder is refused on the peer", refused);
  const extended = await lock.extend(8000);
  check("redlock: the holder extends its lock", extended.expiration > lock.expiration);
  await extended.release();
  await until(async () => (await b.get(resource)) === null, 5000, "the release on the peer");
  const again = await onB.acquire([resource], 2000);
  check("redlock: after release the peer acquires it", !!again);
  await again.release();
  a.disconnect();
  b.disconnect();
}

async function rateLimiter() {
  const a = conn(producerPort);
  const b = conn(workerPort);
  const keyPrefix = `rl${process.pid}`;
  const limitA = new RateLimiterRedis({ storeClient: a, keyPrefix, points: 5, duration: 5 });
  const limitB = new RateLimiterRedis({ storeClient: b, keyPrefix, points: 5, duration: 5 });
  let ok = 0;
  for (let i = 0; i < 5; i++) {
    await limitA.consume("user-1");
    ok++;
  }
  let rejected = null;
  try {
    await limitA.consume("user-1");
  } catch (r) {
    rejected = r;
  }
  check("rate-limiter-flexible: 5 points pass, the 6th is refused", ok === 5 && rejected && rejected.remainingPoints === 0,
    JSON.stringify(rejected));
  await until(async () => Number(await b.get(`${keyPrefix}:user-1`)) >= 6, 5000, "the count on the peer");
  let rejectedOnB = false;
  try {
    await limitB.consume("user-1");
  } catch (r) {
    rejectedOnB = r.remainingPoints === 0;
  }
  check("rate-limiter-flexible: the peer sees the spent points", rejectedOnB);
  const other = await limitB.consume("user-2");
  check("rate-limiter-flexible: another key has its own points", other.remainingPoints === 4);
  a.disconnect();
  b.disconnect();
}

for (const [name, t] of [["bullmq", bullmq], ["redlock", redlock], ["rate-limiter-flexible", rateLimiter]]) {
  try {
    await t();
  } catch (e) {
    check(`${name}: ran without an exception`, false, e && e.stack);
  }
}
console.log(`node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
