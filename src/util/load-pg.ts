type Pg = typeof import('pg').default

let loading: Promise<Pg> | undefined

/**
 * Imports `pg` (once). At load, pg looks for the Cloudflare Workers runtime: without a global
 * `navigator` (Node 20 has none; 21 and later do) it asks `typeof Response`, which loads undici,
 * about 45 ms of every process that touches PostgreSQL. A `navigator` naming Node answers the
 * check first; it is there only while pg loads.
 */
export function loadPg(): Promise<Pg> {
  loading ??= (async () => {
    const lent = !('navigator' in globalThis)
    if (lent)
      Object.defineProperty(globalThis, 'navigator', {
        value: { userAgent: `Node.js/${process.versions.node}` },
        configurable: true,
      })
    try {
      return (await import('pg')).default
    } finally {
      if (lent) delete (globalThis as { navigator?: unknown }).navigator
    }
  })()
  return loading
}
