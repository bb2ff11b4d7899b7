// A small lint: the checks that matter here and that tsc does not make.
// - no console.* outside src/output (one output module owns the console)
// - no .only( in tests (vitest's allowOnly is off too)
// - no process.exit outside src/cli
// - no import() of a run-time path outside src/util/import-file.ts
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const problems = []

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) walk(path)
    else if (/\.(ts|mts|mjs|js)$/.test(name)) check(path)
  }
}

function check(path) {
  const rel = relative(root, path)
  const lines = readFileSync(path, 'utf8').split('\n')
  lines.forEach((line, i) => {
    const where = `${rel}:${i + 1}`
    if (rel.startsWith('src/') && !rel.startsWith('src/output/') && /\bconsole\.(log|error|warn|info)\(/.test(line)) {
      problems.push(`${where}: console output outside src/output; use the Output module`)
    }
    if (rel.startsWith('src/') && !rel.startsWith('src/cli/') && /\bprocess\.exit\(/.test(line)) {
      problems.push(`${where}: process.exit outside src/cli; throw a TenancyError instead`)
    }
    // The CLI bundle turns import() into require() (a vm.Script has none): a module found at
    // run time is imported through util/import-file.ts, which uses the loader's import().
    const code = !/^\s*(\/\/|\*|\/\*\*)/.test(line)
    if (code && rel.startsWith('src/') && rel !== 'src/util/import-file.ts' && /\bimport\((?!['")])/.test(line))
      problems.push(`${where}: import() of a path known only at run time; use importFile (src/util/import-file.ts)`)
    if (rel.startsWith('test/') && /\b(it|test|describe)\.only\(/.test(line))
      problems.push(`${where}: .only( left in a test`)
    if (/\s+$/.test(line)) problems.push(`${where}: trailing whitespace`)
  })
}

for (const dir of ['src', 'test', 'bench']) {
  try {
    walk(join(root, dir))
  } catch (error) {
    if (error.code !== 'ENOENT') throw error
  }
}
if (problems.length > 0) {
  console.error(problems.join('\n'))
  console.error(`lint: ${problems.length} problem(s)`)
  process.exit(1)
}
console.log('lint: ok')
