// A BullMQ add-and-process loop: adds JOBS jobs through one server while a worker on another
// (or the same) processes them; prints the jobs per second from the first add to the last
// completion. Run from tests/frameworks (its node_modules).
//
//   node bullmq_loop.mjs <jobs> <producer port> <worker port>

import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";

const [jobs, producerPort, workerPort] = process.argv.slice(2).map(Number);
const conn = (port) => new IORedis({ port, host: "127.0.0.1", maxRetriesPerRequest: null });
const name = `loop-${process.pid}`;
let done = 0;
let finish;
const finished = new Promise((r) => (finish = r));
const worker = new Worker(name, async (job) => job.data.n, { connection: conn(workerPort), concurrency: 8 });
worker.on("completed", () => {
  done++;
  if (done === jobs) finish();
});
await worker.waitUntilReady();
const queue = new Queue(name, { connection: conn(producerPort) });
const start = process.hrtime.bigint();
const batch = 50;
for (let i = 0; i < jobs; i += batch) {
  await queue.addBulk(Array.from({ length: Math.min(batch, jobs - i) }, (_, k) => ({ name: "j", data: { n: i + k } })));
}
await finished;
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log((jobs / seconds).toFixed(0));
await worker.close();
await queue.obliterate({ force: true });
await queue.close();
process.exit(0);
