#!/usr/bin/env node
// `--version` answers without loading the CLI, so scripts that probe for tenancy stay fast.
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-V')) {
  const { readFileSync } = await import('node:fs')
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`)
} else {
  const { loadCli } = await import('./load-cli.js')
  const cli = loadCli()
  cli.saveCache(await cli.main(process.argv))
}
