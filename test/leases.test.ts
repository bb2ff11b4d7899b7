import { afterEach, describe, expect, it, vi } from 'vitest'
import { LEASE_MS, keepAlive } from '../src/registry/leases.js'

describe('keepAlive renews a lease and says when it is lost', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('a failed renewal is tried again while the lease still holds; it is lost only when the next try would be late', async () => {
    vi.useFakeTimers()
    let calls = 0
    const renewal = keepAlive(async () => {
      calls++
      throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' })
    })
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3 + 1)
    expect(calls).toBe(1)
    expect(renewal.signal.aborted).toBe(false)
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3)
    // The third tick would come at the lease's expiry: lost now, with the error as the reason.
    expect(calls).toBe(2)
    expect(renewal.signal.aborted).toBe(true)
    expect((renewal.signal.reason as Error).message).toBe('database is locked')
    await vi.advanceTimersByTimeAsync(LEASE_MS)
    expect(calls).toBe(2)
    renewal.stop()
  })

  it('one failure between good renewals loses nothing', async () => {
    vi.useFakeTimers()
    let calls = 0
    const renewal = keepAlive(async () => {
      calls++
      if (calls === 2) throw new Error('connection reset')
      return true
    })
    await vi.advanceTimersByTimeAsync(LEASE_MS * 3)
    expect(calls).toBeGreaterThanOrEqual(8)
    expect(renewal.signal.aborted).toBe(false)
    renewal.stop()
  })

  it('a renewal that finds the lease taken aborts with "taken" and renewing stops', async () => {
    vi.useFakeTimers()
    let calls = 0
    const renewal = keepAlive(async () => {
      calls++
      return false
    })
    await vi.advanceTimersByTimeAsync(LEASE_MS)
    expect(renewal.signal.aborted).toBe(true)
    expect(renewal.signal.reason).toBe('taken')
    expect(calls).toBe(1)
    renewal.stop()
  })
})
