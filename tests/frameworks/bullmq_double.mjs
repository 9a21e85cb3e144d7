// One BullMQ queue with a worker on each replica of a mesh, jobs added through the first:
// prints, as JSON, how many jobs ran, and how many ran more than once.
//
//   node bullmq_double.mjs <jobs> <port> <port> ...

import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";

const [jobs, ...ports] = process.argv.slice(2).map(Number);
const conn = (port) => new IORedis({ port, host: "127.0.0.1", maxRetriesPerRequest: null });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const name = `double-${process.pid}`;
const runs = new Map();
const workers = ports.map(
  (port) =>
    new Worker(name, async (job) => {
      runs.set(job.id, (runs.get(job.id) || 0) + 1);
      await sleep(5);
      return job.data.n;
    }, { connection: conn(port), concurrency: 2 }),
);
await Promise.all(workers.map((w) => w.waitUntilReady()));
const queue = new Queue(name, { connection: conn(ports[0]) });
for (let i = 0; i < jobs; i++) {
  await queue.add("job", { n: i });
  if (i % 10 === 9) await sleep(20);
}
const start = Date.now();
while (runs.size < jobs && Date.now() - start < 120000) await sleep(100);
await sleep(2000); // late duplicates
const twice = [...runs.values()].filter((n) => n > 1).length;
const extra = [...runs.values()].reduce((a, n) => a + n - 1, 0);
console.log(JSON.stringify({ framework: "bullmq", jobs, ran: runs.size, ran_more_than_once: twice, extra_runs: extra }));
await Promise.all(workers.map((w) => w.close()));
await queue.close();
process.exit(0);
