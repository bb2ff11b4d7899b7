/** The most output kept from a child process (SPEC §6): its last 64 KiB. */
export const OUTPUT_TAIL_BYTES = 64 * 1024

/**
 * The last `limit` bytes of a child's output, kept while it streams and counting what was
 * dropped, so memory stays bounded however much the child prints.
 *
 * @example
 * const tail = new OutputTail()
 * child.stdout.on('data', (chunk) => tail.push(chunk))
 * tail.text() // "[… 4934464 bytes cut]\n…the last 64 KiB"
 */
export class OutputTail {
  readonly #limit: number
  readonly #chunks: Buffer[] = []
  #size = 0
  #cut = 0

  constructor(limit = OUTPUT_TAIL_BYTES) {
    this.#limit = limit
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk)
    this.#size += chunk.length
    while (this.#size > this.#limit) {
      const first = this.#chunks[0]!
      const excess = this.#size - this.#limit
      if (first.length <= excess) {
        this.#chunks.shift()
        this.#size -= first.length
        this.#cut += first.length
      } else {
        // A copy, so the kept bytes do not hold the whole (possibly large) chunk in memory.
        this.#chunks[0] = Buffer.from(first.subarray(excess))
        this.#size -= excess
        this.#cut += excess
      }
    }
  }

  /**
   * The kept output as text, after a line `[… N bytes cut]` when anything was dropped; with
   * `limit`, only its last `limit` bytes (an error message's excerpt), N counting all the rest.
   */
  text(limit = this.#limit): string {
    const all = Buffer.concat(this.#chunks)
    const kept = all.subarray(Math.max(0, all.length - limit))
    const cut = this.#cut + all.length - kept.length
    return cut > 0 ? `[… ${cut} bytes cut]\n${kept.toString('utf8')}` : kept.toString('utf8')
  }
}
