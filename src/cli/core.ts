// Everything a command does, loaded in one piece the first time a command runs, so that
// `--help` and argument errors never load kysely or better-sqlite3, and a real command loads
// one chunk instead of a dozen small modules.
export { usingBench } from '../bench.js'
export { initBench } from '../sites/init.js'
export { newSite } from '../sites/new-site.js'
export { dropSite } from '../sites/drop-site.js'
export { requireSite } from '../sites/site.js'
export { listSites } from '../sites/list-sites.js'
export { installApps } from '../apps/install.js'
export { listApps, listSiteApps } from '../apps/list-apps.js'
export { setConfig, showConfig } from '../sites/config-commands.js'
export { addSystemManager } from '../sites/users.js'
export { generateKeys, verifyKey } from '../sites/api-keys.js'
