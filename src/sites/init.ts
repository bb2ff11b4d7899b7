import { cpSync, existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { CONFIG_FILE } from '../bench.js'
import { DEFAULT_APPS, initialConfig } from '../config/config.js'
import { TenancyError, usageError } from '../errors.js'
import { packageRoot } from '../util/library-path.js'
import { writeFileAtomic, writeJsonAtomic } from '../util/json-file.js'

export interface InitResult {
  path: string
  config_file: string
  apps: string[]
}

/** `tenancy init`: a new bench with its config, `apps/`, `sites/` and `.tenancy/`; optionally the example apps. */
export function initBench(dir: string, options: { withExampleApps?: boolean; cwd?: string } = {}): InitResult {
  const root = resolve(options.cwd ?? process.cwd(), dir)
  const configFile = join(root, CONFIG_FILE)
  if (existsSync(configFile))
    throw usageError(`${configFile} exists already: "${root}" is a bench; use it, or pick another directory`)
  const apps: string[] = []
  if (options.withExampleApps) {
    const source = join(packageRoot(), 'apps')
    for (const app of DEFAULT_APPS) {
      if (!existsSync(join(source, app, 'app.json')))
        throw new TenancyError(`the example app "${app}" is missing from ${source}; reinstall tenancy`)
    }
  }
  mkdirSync(root, { recursive: true })
  for (const sub of ['apps', 'sites']) mkdirSync(join(root, sub), { recursive: true })
  mkdirSync(join(root, '.tenancy'), { recursive: true, mode: 0o700 })
  if (options.withExampleApps) {
    const source = join(packageRoot(), 'apps')
    for (const app of DEFAULT_APPS) {
      const target = join(root, 'apps', app)
      if (!existsSync(target)) cpSync(join(source, app), target, { recursive: true })
      apps.push(app)
    }
  }
  if (!existsSync(join(root, '.gitignore')))
    writeFileAtomic(join(root, '.gitignore'), 'sites/\narchived/\nbackups/\n.tenancy/\n')
  const config = initialConfig()
  // Without the example apps the pipeline installs nothing until apps are added and listed here.
  if (!options.withExampleApps) (config.provision as { apps: string[] }).apps = []
  writeJsonAtomic(configFile, config)
  return { path: root, config_file: configFile, apps }
}
