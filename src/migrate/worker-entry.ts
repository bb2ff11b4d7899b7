// A worker thread of `SiteThreads` (migrate/site-threads.ts): started with its task (migrate
// with the plan, or rollback with the bench's migrations and the target), then receives sites
// and answers each with its result, in order, one site at a time (a site handed to it ahead
// waits for the one before). better-sqlite3 is synchronous, so SQLite sites run in parallel
// only across threads. Once the pool's halt flag is up, a site not started is answered as such.
import { parentPort, workerData } from 'node:worker_threads'
import { migrateSite, type SiteJob } from './site-migrator.js'
import { rollbackSite } from './site-rollback.js'
import type { FromThread, ThreadData, ToThread } from './site-threads.js'

const task = workerData as ThreadData
// A rollback's job is a migrate job without `dryRun` (the target carries it).
const runSite = (job: SiteJob) =>
  task.task === 'migrate' ? migrateSite(task.plan, job) : rollbackSite(job, task.known, task.target)

const given: SiteJob[] = []
let working = false

async function work(): Promise<void> {
  working = true
  for (let job = given.shift(); job; job = given.shift()) {
    const answer: FromThread =
      task.halt && Atomics.load(task.halt, 0) !== 0 ? { notStarted: true } : { result: await runSite(job) }
    parentPort!.postMessage(answer)
  }
  working = false
}

parentPort!.on('message', (message: ToThread) => {
  if ('exit' in message) {
    parentPort!.close()
    return
  }
  given.push(message.job)
  if (!working) void work()
})
