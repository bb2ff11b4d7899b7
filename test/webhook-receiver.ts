import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import Database from 'better-sqlite3'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import { serverQuery, useRegistry } from './backends.js'
import { makeBench, setConfig } from './helpers.js'

/** One request the receiver got: what it carried, whether its signature held, what it answered. */
export interface Delivery {
  id: string | undefined
  headers: IncomingHttpHeaders
  body: any
  /** The exact bytes, as text. */
  raw: string
  signed: boolean
  signatureValid: boolean
  answered: number
  at: number
}

export interface Receiver {
  url: string
  /** Every request, in order (duplicates included). */
  deliveries: Delivery[]
  /** The events it took (2xx), each once: duplicates of an id already taken are dropped, as a receiver should. */
  accepted(): Delivery[]
}

const servers: { close(): void }[] = []
afterEach(() => {
  for (const server of servers.splice(0)) server.close()
})

/** The statuses a receiver answers with, in turn; or the status for each event it is sent. */
export type Answers = number[] | ((event: any) => number)

/**
 * A webhook receiver on a local port for one test: checks `X-Tenancy-Signature` against
 * `secret` (HMAC-SHA256 of the exact body), and answers each request with the next status of
 * `answers` (200 once they run out), or with what `answers` returns for the event.
 */
export async function startReceiver(secret: string | undefined, answers: Answers = []): Promise<Receiver> {
  const deliveries: Delivery[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      const header = req.headers['x-tenancy-signature']
      let signatureValid = false
      if (secret !== undefined && typeof header === 'string') {
        const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`)
        const given = Buffer.from(header)
        signatureValid = given.length === expected.length && timingSafeEqual(given, expected)
      }
      const body = JSON.parse(raw.toString('utf8'))
      const answered = typeof answers === 'function' ? answers(body) : (answers.shift() ?? 200)
      deliveries.push({
        id: req.headers['x-tenancy-event-id'] as string | undefined,
        headers: req.headers,
        body,
        raw: raw.toString('utf8'),
        signed: typeof header === 'string',
        signatureValid,
        answered,
        at: Date.now(),
      })
      res.statusCode = answered
      res.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  servers.push(server)
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/tenancy`,
    deliveries,
    accepted() {
      const seen = new Set<string>()
      return deliveries.filter((d) => {
        if (d.answered < 200 || d.answered > 299 || seen.has(d.id!)) return false
        seen.add(d.id!)
        return true
      })
    },
  }
}

/** Runs a statement that changes a bench's registry, whichever kind it is. */
export async function registryExec(bench: string, text: string): Promise<void> {
  const config = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8'))
  const url: string = config.registry ?? 'sqlite:.tenancy/registry.db'
  if (url.startsWith('sqlite:')) {
    const db = new Database(join(bench, url.slice('sqlite:'.length)))
    try {
      db.exec(text)
    } finally {
      db.close()
    }
    return
  }
  const result = await serverQuery('postgres', text, undefined, new URL(url).pathname.slice(1))
  if (result.error) throw new Error(result.error)
}

/**
 * A fresh bench on a registry of `kind` whose `provision.notify` is a receiver started for
 * the test (signing with `secret` when given; answering with `answers`, see `startReceiver`).
 */
export async function benchWithReceiver(
  kind: 'sqlite' | 'postgres',
  options: { secret?: string; answers?: Answers } = {},
): Promise<{ bench: string; receiver: Receiver }> {
  const receiver = await startReceiver(options.secret, options.answers)
  const bench = makeBench()
  await useRegistry(bench, kind)
  const secret = options.secret === undefined ? {} : { secret: options.secret }
  setConfig(bench, (c) => (c.provision.notify = { webhook: receiver.url, ...secret }))
  return { bench, receiver }
}
