import type { Bench } from '../bench.js'
import { messageOf } from '../errors.js'
import { liveWorkerHosts, resultChannel } from '../registry/hosts.js'
import { LEASE_MS, newOwner } from '../registry/leases.js'
import type { SiteRecord } from '../registry/registry.js'
import {
  OUTLIVES_SENDER,
  cancelSiteJob,
  enqueueSiteJob,
  getSiteJob,
  registerSender,
  siteJobResults,
  type SiteJobRow,
} from '../registry/site-jobs.js'
import { homeName } from './site-home.js'

/**
 * Sending a fleet command's sites homed on other machines to those machines' workers (SPEC
 * §10) and waiting for their results: one site job per machine, results read as they come
 * (woken by NOTIFY, with a poll as the fallback). A machine with no live worker gets no job:
 * its sites are `unreachable`, never touched.
 */

/** What a remote machine runs: the command's name and its options (JSON, never a secret). */
export interface RemoteCommand {
  command: string
  payload: Record<string, unknown>
  /**
   * The job is finished even once its sender is gone (the completion of something already
   * committed, such as a pull's claim); other jobs stop when their sender goes.
   */
  outlivesSender?: boolean
}

/** The result of a site a remote machine did not (or could not be seen to) finish. */
export type RemoteBlank<R> = (site: string, status: 'unreachable' | 'interrupted' | 'failed', error: string) => R

/** How often the sender looks at its jobs when no notification came (and how often it checks their machines). */
const POLL_MS = 1000
const POLL_WITHOUT_LISTEN_MS = 200

/** Why a site of a machine with no live worker was not touched. */
export function unreachableReason(host: string): string {
  return `machine ${host} has no live worker, so the site was not touched; start "tenancy worker" on ${host}, or run the command there`
}

/**
 * Runs `remote` (sites homed elsewhere) on their machines' workers and calls `onResult` with each
 * site's result as it arrives. Resolves when every site has one: the machine's, or `blank` —
 * `unreachable` for a machine with no live worker (or whose worker died and none took the job
 * over before its lease ran out), `interrupted` for sites not reported when `signal` aborted
 * (the jobs are called off).
 */
export async function runOnMachines<R extends { site: string }>(
  bench: Bench,
  remote: readonly Pick<SiteRecord, 'name' | 'host'>[],
  request: RemoteCommand,
  options: { signal?: AbortSignal; onResult: (result: R) => void; blank: RemoteBlank<R> },
): Promise<void> {
  if (remote.length === 0) return
  const registry = await bench.registry()
  const byHost = new Map<string, string[]>()
  for (const site of remote) {
    const host = homeName(site)
    byHost.set(host, [...(byHost.get(host) ?? []), site.name])
  }
  const live = await liveWorkerHosts(registry.db)
  // The sending process, with the machine it runs on (what the worker there logs).
  const sender = `${newOwner()} on ${bench.host}`
  // A notification that came while the results were being read is not lost: the next wait is skipped.
  let notified = false
  let wake: () => void = () => {
    notified = true
  }
  const unreachable = (host: string, sites: string[]) => {
    for (const site of sites) options.onResult(options.blank(site, 'unreachable', unreachableReason(host)))
  }
  if (![...byHost.keys()].some((h) => live.has(h))) {
    for (const [host, sites] of byHost) unreachable(host, sites)
    return
  }
  // Registered while it waits (the machines stop its jobs once it is gone), and listening
  // before any job is queued: a machine may answer at once.
  const registration = await registerSender(registry, sender)
  let stopListening = async () => {}
  const onAbort = () => wake()
  try {
    stopListening = await registry.listen([resultChannel(sender)], () => wake())
    const waiting: Waiting[] = []
    for (const [host, sites] of byHost) {
      if (!live.has(host)) {
        unreachable(host, sites)
        continue
      }
      const id = await enqueueSiteJob(registry, {
        host,
        command: request.command,
        payload: request.outlivesSender ? { ...request.payload, [OUTLIVES_SENDER]: true } : request.payload,
        sites,
        requestedBy: sender,
      })
      waiting.push({ id, host, sites, reported: new Set(), next: 0 })
    }
    options.signal?.addEventListener('abort', onAbort)
    await waitOn(bench, waiting, options, {
      sleep: (ms) =>
        new Promise<void>((resolve) => {
          if (notified || options.signal?.aborted) return resolve()
          const timer = setTimeout(resolve, ms)
          wake = () => {
            clearTimeout(timer)
            resolve()
          }
        }).then(() => {
          notified = false
          wake = () => {
            notified = true
          }
        }),
    })
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    await stopListening().catch(() => {})
    await registration.release()
  }
}

/** A job sent, and what the sender has seen of it. */
interface Waiting {
  id: number
  host: string
  sites: string[]
  reported: Set<string>
  next: number
  /** Since when (ms) its machine has had no live worker while the job waited in the queue. */
  workerless?: number
}

/** Waits on `waiting` until each job is over, calling `onResult` for each of their sites. */
async function waitOn<R extends { site: string }>(
  bench: Bench,
  waiting: Waiting[],
  options: { signal?: AbortSignal; onResult: (result: R) => void; blank: RemoteBlank<R> },
  { sleep }: { sleep: (ms: number) => Promise<void> },
): Promise<void> {
  const registry = await bench.registry()
  // A result as the machine wrote it, with every field of this command's results (a newer or older
  // tenancy there may write fewer).
  const asResult = (row: { site: string; result: unknown }): R => ({
    ...options.blank(row.site, 'failed', ''),
    ...(row.result as object),
  })
  const pollMs = registry.kind === 'postgres' ? POLL_MS : POLL_WITHOUT_LISTEN_MS
  /** Ends a job's wait: every site not reported gets `status` with `error`. */
  const settle = (job: Waiting, status: 'unreachable' | 'interrupted' | 'failed', error: string) => {
    for (const site of job.sites) if (!job.reported.has(site)) options.onResult(options.blank(site, status, error))
    job.reported = new Set(job.sites)
  }
  /** Reports the results job has written since the sender last looked. */
  const readResults = async (job: Waiting) => {
    for (const row of await siteJobResults(registry.db, job.id, job.next)) {
      job.next = row.seq + 1
      if (job.reported.has(row.site)) continue
      job.reported.add(row.site)
      options.onResult(asResult(row))
    }
  }
  while (waiting.length > 0) {
    for (const job of [...waiting]) {
      await readResults(job)
      const state = await getSiteJob(registry.db, job.id)
      const over = await jobOver(bench, job, state, options.signal?.aborted === true)
      if (over) {
        // Results written before the job ended are read once more, then the rest settled.
        await readResults(job)
        settle(job, over.status, over.error)
        waiting.splice(waiting.indexOf(job), 1)
      }
    }
    if (waiting.length > 0) await sleep(pollMs)
  }
}

/**
 * Whether the wait on a job is over, and how its unreported sites end: the job finished (done:
 * nothing is left; failed: its error), was called off, or must be called off now — Ctrl-C here,
 * its machine has had no live worker for a lease's time while it is queued, or it is running
 * with an expired lease and no live worker to take it over.
 */
async function jobOver(
  bench: Bench,
  sent: Waiting,
  job: SiteJobRow | undefined,
  aborted: boolean,
): Promise<{ status: 'unreachable' | 'interrupted' | 'failed'; error: string } | undefined> {
  const registry = await bench.registry()
  const { host, id } = sent
  if (!job) return { status: 'failed', error: `the job sent to ${host} is gone from the registry` }
  if (job.status === 'done')
    return { status: 'failed', error: `machine ${host} finished without a result for the site` }
  if (job.status === 'failed') return { status: 'failed', error: `on ${host}: ${job.error ?? 'the job failed'}` }
  if (job.status === 'cancelled')
    return { status: 'unreachable', error: job.error ?? `the job sent to ${host} was called off` }
  if (aborted) {
    await cancelSiteJob(registry.db, id, 'called off: the command that sent it was interrupted', 'any')
    return {
      status: 'interrupted',
      error: `not finished: the command was interrupted (machine ${host} stops after its current site)`,
    }
  }
  try {
    const live = (await liveWorkerHosts(registry.db, host)).has(host)
    if (live || job.status !== 'queued') sent.workerless = undefined
    else sent.workerless ??= Date.now()
    if (live) return undefined
    // A worker stopped (its job given back to the queue) is given as long to come back as one
    // that died: a restart picks the job up where it was.
    if (
      sent.workerless !== undefined &&
      Date.now() - sent.workerless >= LEASE_MS &&
      (await cancelSiteJob(registry.db, id, unreachableReason(host), 'queued'))
    )
      return { status: 'unreachable', error: unreachableReason(host) }
    if (job.status === 'running' && (await cancelSiteJob(registry.db, id, workerDied(host), 'orphaned')))
      return { status: 'unreachable', error: workerDied(host) }
  } catch (error) {
    return { status: 'failed', error: `cannot follow the job sent to ${host}: ${messageOf(error)}` }
  }
  return undefined
}

function workerDied(host: string): string {
  return `machine ${host}'s worker stopped during the job and none took it over; the site may be half done there: run the command again (on ${host}, or once its worker is back)`
}
