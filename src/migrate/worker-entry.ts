// A worker thread of `SiteThreads` (migrate/site-threads.ts): started with its task (migrate
// with the plan, or rollback with the bench's migrations and the target), then receives one
// site at a time and answers each with its result. better-sqlite3 is synchronous, so SQLite
// sites run in parallel only across threads.
import { parentPort, workerData } from 'node:worker_threads'
import { migrateSite, type SiteJob } from './site-migrator.js'
import { rollbackSite } from './site-rollback.js'
import type { ThreadTask, ToThread } from './site-threads.js'

const task = workerData as ThreadTask
// A rollback's job is a migrate job without `dryRun` (the target carries it).
const runSite = (job: SiteJob) =>
  task.task === 'migrate' ? migrateSite(task.plan, job) : rollbackSite(job, task.known, task.target)

parentPort!.on('message', (message: ToThread) => {
  if ('exit' in message) {
    parentPort!.close()
    return
  }
  void runSite(message.job).then((result) => parentPort!.postMessage({ result }))
})
