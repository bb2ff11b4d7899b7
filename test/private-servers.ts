import { execa, type ResultPromise } from 'execa'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// Private database servers for the tests that take a server away: each a PostgreSQL or
// MariaDB instance in a temporary directory on a free port (never the shared test servers).

export const PG_BIN = existsSync('/usr/lib/postgresql')
  ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))[0]
  : undefined
const pgBin = (name: string) => `/usr/lib/postgresql/${PG_BIN}/bin/${name}`
export const HAVE_PG = PG_BIN !== undefined && existsSync(pgBin('initdb'))
export const HAVE_MARIADB = existsSync('/usr/sbin/mariadbd') && existsSync('/usr/bin/mariadb-install-db')

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

export interface PrivateServer {
  readonly port: number
  readonly label: RegExp
  start(): Promise<void>
  /** Takes the server away at once: `pg_ctl stop -m immediate`, or SIGKILL. */
  kill(): Promise<void>
  /** Runs SQL as the admin; throws on error. */
  query(text: string): Promise<any[]>
  remove(): Promise<void>
}

export async function privatePostgres(): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tenancy-pg-'))
  chownSync(
    dir,
    Number((await execa('id', ['-u', 'postgres'])).stdout),
    Number((await execa('id', ['-g', 'postgres'])).stdout),
  )
  const port = await freePort()
  // PostgreSQL refuses to run as root.
  const asPostgres = (cmd: string, args: string[]) =>
    execa('runuser', ['-u', 'postgres', '--', pgBin(cmd), ...args], { cwd: dir })
  await asPostgres('initdb', ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync'])
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`
  const server: PrivateServer = {
    port,
    label: new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${port}`),
    start: async () =>
      void (await asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-o', opts, '-l', join(dir, 'log'), '-w', 'start'])),
    kill: async () => void (await asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop'])),
    async query(text) {
      const { default: pg } = await import('pg')
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' })
      client.on('error', () => {})
      try {
        await client.connect()
        return (await client.query(text)).rows
      } finally {
        await client.end().catch(() => {})
      }
    },
    async remove() {
      await server.kill().catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    },
  }
  await server.start()
  return server
}

export async function privateMariadb(): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tenancy-mariadb-'))
  const port = await freePort()
  await execa('mariadb-install-db', [
    '--no-defaults',
    `--datadir=${join(dir, 'data')}`,
    '--user=root',
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ])
  let child: ResultPromise | undefined
  const server: PrivateServer = {
    port,
    label: new RegExp(`MariaDB at 127\\.0\\.0\\.1:${port}`),
    async start() {
      child = execa(
        '/usr/sbin/mariadbd',
        [
          '--no-defaults',
          `--datadir=${join(dir, 'data')}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--socket=${join(dir, 'sock')}`,
          '--user=root',
          `--log-error=${join(dir, 'err.log')}`,
          '--innodb-buffer-pool-size=16M',
          '--skip-log-bin',
        ],
        { reject: false, stdio: 'ignore' },
      )
      await until('the private MariaDB', async () => (await server.query('select 1')).length === 1)
    },
    async kill() {
      child?.kill('SIGKILL')
      await child
      child = undefined
    },
    async query(text) {
      const { default: mysql } = await import('mysql2/promise')
      const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' })
      conn.on('error', () => {})
      try {
        return (await conn.query(text))[0] as any[]
      } finally {
        await conn.end().catch(() => {})
      }
    },
    async remove() {
      await server.kill().catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    },
  }
  await server.start()
  return server
}
