// A migrate worker thread: receives the plan once, then one site at a time, and answers
// each with its result. better-sqlite3 is synchronous, so SQLite sites run in parallel only
// across threads.
import { parentPort, workerData } from 'node:worker_threads'
import { migrateSite, type MigrationPlan, type SiteJob } from './site-migrator.js'

const plan = (workerData as { plan: MigrationPlan }).plan

parentPort!.on('message', (message: { id: number; job: SiteJob } | { exit: true }) => {
  if ('exit' in message) {
    parentPort!.close()
    return
  }
  void migrateSite(plan, message.job).then((result) => parentPort!.postMessage({ id: message.id, result }))
})
