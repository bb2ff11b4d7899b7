import type { Bench, SiteJobCommand } from '../bench.js'
import { messageOf } from '../errors.js'
import { backupSites } from '../backups/backup.js'
import { keepAlive } from '../registry/leases.js'
import {
  addSiteJobResult,
  finishSiteJob,
  releaseSiteJob,
  renewSiteJob,
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

/**
 * Runs a site job this machine's worker claimed (SPEC §10): the command over the job's sites
 * that have no result yet (a job taken over after a crash resumes there), each site's result
 * recorded as it finishes, which wakes the sender. The job's lease is renewed meanwhile; once
 * the sender calls it off (or another worker took it over) no further site is started. When
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
  let writes: Promise<void> = Promise.resolve()
  const report = (result: SiteOutcome) => {
    // A site this worker did not start because it is stopping is the next worker's.
    if (result.status === 'interrupted' && stop.signal.aborted) return
    writes = writes.then(async () => {
      if (lost) return
      if (!(await addSiteJobResult(registry, job.id, owner, seq, result.site, result))) {
        lost = true
        stop.abort()
        return
      }
      seq++
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
    if (lost) return
    if (stop.signal.aborted) await releaseSiteJob(registry, job.id, owner)
    else await finishSiteJob(registry, job.id, owner, { status: 'done' })
  } catch (error) {
    await writes.catch(() => {})
    if (!lost) await finishSiteJob(registry, job.id, owner, { status: 'failed', error: messageOf(error) })
  } finally {
    lease.stop()
    signal?.removeEventListener('abort', stopping)
  }
}
