// Types of seed-rows.mjs, for the tests that seed their registries with it.

/** Runs statements on a bench's registry (SQLite or PostgreSQL, as its config names it), in one transaction. */
export function onRegistry(bench: string, statements: string[]): Promise<void>

/** Adds `count` tenants (`t1000001`…), and with `sites` a registry row for each one's site on machine `host`. */
export function seedTenants(bench: string, count: number, options?: { sites?: boolean; host?: string }): Promise<void>

/** The tenants `seedTenants` makes, in the order `tenant list` shows them (created_at, then id). */
export function seededTenantOrder(count: number): string[]

/** Adds `count` entries to the error log, their tenants `t1000001`… in turn over `tenants` names. */
export function seedErrors(bench: string, count: number, tenants?: number): Promise<void>

/** Adds `count` delivered events to the outbox. */
export function seedEvents(bench: string, count: number): Promise<void>
