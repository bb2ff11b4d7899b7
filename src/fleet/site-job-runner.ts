import type { Bench, SiteJobCommand } from '../bench.js'
import { messageOf } from '../errors.js'
import { ServerGoneError } from '../databases/server-gone.js'
import { backupSites } from '../backups/backup.js'
import { keepAlive } from '../registry/leases.js'
import {
  addSiteJobResult,
  cancelSiteJob,
  finishSiteJob,
  releaseSiteJob,
  renewSiteJob,
  senderGone,
  sitesWithResults,
  type SiteJobRow,
} from '../registry/site-jobs.js'
import type { SiteOutcome } from '../sites/site-selection.js'
import { migrate } from '../migrate/migrate.js'
import { rollback } from '../migrate/rollback.js'
import { executeOnSites } from './execute.js'
import { runOnSites } from './run.js'
import { loadSiteFunction } from './site-module.js'

const COMMANDS: Record<string, SiteJobCommand> = {
  migrate: (bench, p, over) => migrate(bench, { ...over, dryRun: p.dryRun, skipFailing: p.skipFailing }),
  rollback: (bench, p, over) =>
    rollback(bench, { ...over, app: p.app, step: p.step, to: p.to, dryRun: p.dryRun, skipFailing: p.skipFailing }),
  backup: (bench, p, over) =>
    backupSites(bench, {
      ...over,
      encrypt: p.encrypt,
      keep: p.keep,
      backupPath: p.backupPath,
      skipFailing: p.skipFailing,
    }),
  run: (bench, p, over) =>
    runOnSites(bench, {
      ...over,
      command: p.command,
      shell: p.shell,
      timeoutSeconds: p.timeoutSeconds,
      skipFailing: p.skipFailing,
      keepOutput: true,
    }),
  execute: async (bench, p, over) => {
    const { fn } = await loadSiteFunction(`${p.module}#${p.exportName}`, bench.root)
    return executeOnSites(bench, fn as never, { ...over, args: p.args, skipFailing: p.skipFailing })
  },
}

/** How often a running job looks whether its sender is still there. */
const SENDER_WATCH_MS = 1000
/** How long a site's result is tried again while the registry is away, before the job stops. */
const RECORD_RETRY_MS = 20_000
const SENDER_GONE = 'called off: the command that sent it is gone (killed, or cut off from the registry)'

/**
 * Runs a site job this machine's worker claimed (SPEC §10): the command over the job's sites
 * that have no result yet (a job taken over after a crash resumes there), each site's result
 * recorded as it finishes, which wakes the sender. The job's lease is renewed meanwhile; once
 * the sender calls it off or is gone (or another worker took it over) no further site is started. When
 * this worker is stopped (`signal`), the sites not done go back to the queue for the next worker
 * of this machine.
 */
export async function runSiteJob(bench: Bench, job: SiteJobRow, owner: string, signal?: AbortSignal): Promise<void> {
  const registry = await bench.registry()
  const command = Object.hasOwn(COMMANDS, job.command) ? COMMANDS[job.command] : bench.siteJobCommand(job.command)
  if (!command) {
    await finishSiteJob(registry, job.id, owner, {
      status: 'failed',
      error: `this machine's tenancy does not know the command "${job.command}"; upgrade it`,
    })
    return
  }
  // A job whose sender is gone (killed, or cut off from the registry) is worked on for nobody:
  // it is called off, before it starts or after the current site.
  const calledOff = async () =>
    (await senderGone(registry.db, job)) && (await cancelSiteJob(registry.db, job.id, SENDER_GONE, 'any'))
  if (await calledOff()) return
  const reported = await sitesWithResults(registry.db, job.id)
  let seq = reported.size
  const known = new Set((await registry.listSites()).map((s) => s.name))
  const sites = (JSON.parse(job.sites) as string[]).filter((s) => !reported.has(s))
  const stop = new AbortController()
  const stopping = () => stop.abort()
  signal?.addEventListener('abort', stopping, { once: true })
  const lease = keepAlive(() => renewSiteJob(registry.db, job.id, owner))
  lease.signal.addEventListener('abort', stopping, { once: true })
  let lost = false
  // The sender is looked at every second too, so that no further site starts once it is gone.
  let looking = false
  const watch = setInterval(() => {
    if (looking || stop.signal.aborted) return
    looking = true
    calledOff()
      .then((off) => {
        if (!off) return
        lost = true
        stop.abort()
      })
      // A registry that does not answer now is the lease's business.
      .catch(() => {})
      .finally(() => {
        looking = false
      })
  }, SENDER_WATCH_MS)
  watch.unref()
  // A result that cannot be recorded (the registry is away past the retries) stops the job: no
  // further site starts, and the job is the next worker's once its lease runs out.
  let unrecorded: unknown
  let writes: Promise<void> = Promise.resolve()
  const record = async (result: SiteOutcome) => {
    for (const started = Date.now(); ;) {
      try {
        return await addSiteJobResult(registry, job.id, owner, seq, result.site, result)
      } catch (error) {
        if (!(error instanceof ServerGoneError) || Date.now() - started > RECORD_RETRY_MS) throw error
        await new Promise((resolve) => setTimeout(resolve, 1000))
      }
    }
  }
  const report = (result: SiteOutcome) => {
    // A site this worker did not start because it is stopping is the next worker's.
    if (result.status === 'interrupted' && stop.signal.aborted) return
    writes = writes.then(async () => {
      if (lost || unrecorded !== undefined) return
      try {
        if (!(await record(result)) || (await calledOff())) {
          lost = true
          stop.abort()
          return
        }
        seq++
      } catch (error) {
        unrecorded = error
        stop.abort()
      }
    })
  }
  try {
    // A site dropped since the job was sent fails alone, not the job.
    for (const site of sites.filter((s) => !known.has(s)))
      report({ site, status: 'failed', error: `site "${site}" no longer exists on this machine's registry` })
    const present = sites.filter((s) => known.has(s))
    if (present.length > 0)
      await command(bench, JSON.parse(job.payload), {
        sites: present,
        local: true,
        signal: stop.signal,
        onSite: report,
      })
    await writes
    if (unrecorded !== undefined) throw unrecorded
    if (lost) return
    if (stop.signal.aborted) await releaseSiteJob(registry, job.id, owner)
    else await finishSiteJob(registry, job.id, owner, { status: 'done' })
  } catch (error) {
    await writes
    // Away, the registry can record nothing: the job waits there for the next worker.
    if (error instanceof ServerGoneError || unrecorded !== undefined) throw unrecorded ?? error
    if (!lost) await finishSiteJob(registry, job.id, owner, { status: 'failed', error: messageOf(error) })
  } finally {
    clearInterval(watch)
    lease.stop()
    signal?.removeEventListener('abort', stopping)
  }
}
