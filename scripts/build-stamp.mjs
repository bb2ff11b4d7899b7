// Whether dist/ was built from the sources as they are now: `write` records a digest of what the
// build reads (dist/.build-stamp), `check` exits 0 when it still matches, 1 otherwise.
//
// `prepare` checks it before building. npm runs a package's `prepare` again whenever it links it:
// `npx tenancy` in a fresh clone links the clone into npm's cache (the project is not its own
// dependency) and, without this, rebuilt everything there (esbuild and tsc, 10-20 s) before the
// first command printed anything, just after `npm install` had built the same sources.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const stamp = join(root, 'dist', '.build-stamp')

/** Every file under `dir`, sorted, so the digest does not depend on the directory order. */
function filesUnder(dir) {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name)
      return statSync(path).isDirectory() ? filesUnder(path) : [path]
    })
}

/** The digest of the build's inputs: the sources, the build's own config, and the locked dependencies. */
function digest() {
  const inputs = [
    ...filesUnder(join(root, 'src')),
    ...['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs'].map((f) =>
      join(root, f),
    ),
    // The bundle embeds better-sqlite3's JavaScript for this very version (scripts/build.mjs).
    join(root, 'node_modules', 'better-sqlite3', 'package.json'),
  ]
  const hash = createHash('sha256')
  for (const file of inputs) {
    hash.update(relative(root, file)).update('\0')
    hash.update(existsSync(file) ? readFileSync(file) : 'missing').update('\0')
  }
  return hash.digest('hex')
}

const mode = process.argv[2]
if (mode === 'write') writeFileSync(stamp, `${digest()}\n`)
else if (mode === 'check') {
  // The bundle and the library's entry must be there too: a half-deleted dist/ is built again.
  const built = ['cli.cjs', 'index.js', 'index.d.ts', 'migrate-worker.js'].every((f) =>
    existsSync(join(root, 'dist', f)),
  )
  const current = built && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === digest()
  process.exit(current ? 0 : 1)
} else {
  process.stderr.write('usage: node scripts/build-stamp.mjs write|check\n')
  process.exit(2)
}
