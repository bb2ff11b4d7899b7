import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { EXIT_USAGE, TenancyError, usageError } from '../errors.js'
import { assertAppName, parseMigrationFile } from '../names.js'
import { readJsonFile } from '../util/json-file.js'
import { parseHooks, type AppHooks } from './hook-spec.js'
import { forgetParsedFixtures } from './fixtures.js'

/** Names no app may take: the site core schema records its migrations under `core`. */
export const RESERVED_APP_NAMES = new Set(['core', 'tenancy'])

/** One migration file of an app, in apply order. */
export interface MigrationFile {
  name: string
  file: string
  kind: 'sql' | 'js'
  /** A `.sql` migration's revert: the sibling `NNNN_name.down.sql`, when there is one. */
  downFile?: string
}

/** The suffix of a `.sql` migration's revert script. */
const DOWN_SQL = '.down.sql'

/** An app's `app.json` plus what is in its folder. */
export interface AppManifest {
  name: string
  title?: string
  version: string
  description?: string
  requires: string[]
  hooks: AppHooks
  path: string
  migrations: MigrationFile[]
  fixtures: string[]
}

const cache = new Map<string, AppManifest>()

function listMigrations(appPath: string, app: string): MigrationFile[] {
  const dir = join(appPath, 'migrations')
  if (!existsSync(dir)) return []
  const files: MigrationFile[] = []
  const seen = new Set<string>()
  const entries = readdirSync(dir).sort()
  const downs = new Set(entries.filter((f) => f.endsWith(DOWN_SQL)))
  for (const file of entries) {
    if (file.startsWith('.') || /\.(md|txt)$/i.test(file) || downs.has(file)) continue
    const parsed = parseMigrationFile(file)
    if (!parsed) {
      throw new TenancyError(
        `app "${app}": migration file "${file}" must be named ` +
          `NNNN_name.sql, NNNN_name.js or NNNN_name.mjs (lower case)`,
        { exitCode: EXIT_USAGE, namedApp: app },
      )
    }
    if (seen.has(parsed.name)) {
      throw new TenancyError(`app "${app}": two migrations are named "${parsed.name}"; rename one`, {
        exitCode: EXIT_USAGE,
        namedApp: app,
      })
    }
    seen.add(parsed.name)
    const down = `${parsed.name}${DOWN_SQL}`
    const downFile = parsed.kind === 'sql' && downs.delete(down) ? join(dir, down) : undefined
    files.push({ name: parsed.name, file: join(dir, file), kind: parsed.kind, ...(downFile ? { downFile } : {}) })
  }
  const stray = [...downs][0]
  if (stray)
    throw new TenancyError(
      `app "${app}": ${stray} reverts no migration (there is no ${stray.slice(0, -DOWN_SQL.length)}.sql); ` +
        `rename or remove it`,
      { exitCode: EXIT_USAGE, namedApp: app },
    )
  return files
}

function listFixtures(appPath: string): string[] {
  const dir = join(appPath, 'fixtures')
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
    .sort()
    .map((f) => join(dir, f))
}

/**
 * Forgets the manifests read so far: a long-running worker calls it before each job, so a deploy
 * that adds migrations or fixtures while it runs is seen by its next job.
 */
export function forgetLoadedApps(): void {
  cache.clear()
  forgetParsedFixtures()
}

/** Reads and checks one app's manifest (cached per process). An unknown app is a usage error. */
export function loadApp(bench: Pick<Bench, 'appsPath'>, name: string): AppManifest {
  assertAppName(name)
  const path = join(bench.appsPath, name)
  const cached = cache.get(path)
  if (cached) return cached
  const file = join(path, 'app.json')
  if (!existsSync(file)) {
    throw usageError(`app "${name}" is not in ${bench.appsPath}; run "tenancy list-apps" to see the apps of this bench`)
  }
  const raw = readJsonFile(file) as Record<string, unknown>
  const bad = (what: string) => usageError(`${file}: ${what}`)
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('must hold a JSON object')
  if (raw.name !== name) throw bad(`"name" must be "${name}", the folder's name (got ${JSON.stringify(raw.name)})`)
  if (RESERVED_APP_NAMES.has(name)) throw bad(`"${name}" is a reserved name; rename the app`)
  if (typeof raw.version !== 'string' || raw.version.length === 0)
    throw bad('"version" must be a string such as "1.0.0"')
  const requires = raw.requires ?? []
  if (!Array.isArray(requires) || !requires.every((r) => typeof r === 'string'))
    throw bad('"requires" must be a list of app names')
  for (const r of requires as string[]) assertAppName(r)
  const manifest: AppManifest = {
    name,
    title: typeof raw.title === 'string' ? raw.title : undefined,
    version: raw.version,
    description: typeof raw.description === 'string' ? raw.description : undefined,
    requires: requires as string[],
    hooks: parseHooks(raw.hooks, name, path, file),
    path,
    migrations: listMigrations(path, name),
    fixtures: listFixtures(path),
  }
  cache.set(path, manifest)
  return manifest
}

/** Every app in the bench's apps folder, by name. */
export function listBenchApps(bench: Bench): AppManifest[] {
  if (!existsSync(bench.appsPath)) return []
  return readdirSync(bench.appsPath, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(bench.appsPath, d.name, 'app.json')))
    .map((d) => loadApp(bench, d.name))
    .sort((a, b) => a.name.localeCompare(b.name))
}

/**
 * The apps to install for `names`, requirements first (depth-first), each once.
 * A missing requirement or a cycle is a usage error naming the chain.
 */
export function resolveInstallOrder(bench: Pick<Bench, 'appsPath'>, names: string[]): AppManifest[] {
  const order: AppManifest[] = []
  const done = new Set<string>()
  const visiting: string[] = []
  const visit = (name: string, requiredBy?: string) => {
    if (done.has(name)) return
    const loop = visiting.indexOf(name)
    if (loop !== -1) {
      throw usageError(
        `apps require each other in a cycle: ${[...visiting.slice(loop), name].join(' -> ')}; ` +
          `remove one of those "requires"`,
      )
    }
    let app: AppManifest
    try {
      app = loadApp(bench, name)
    } catch (error) {
      if (requiredBy)
        throw usageError(
          `app "${requiredBy}" requires "${name}", which is not in ${bench.appsPath}; add it to the bench`,
          error,
        )
      throw error
    }
    visiting.push(name)
    for (const required of app.requires) visit(required, name)
    visiting.pop()
    done.add(name)
    order.push(app)
  }
  for (const name of names) visit(name)
  return order
}
