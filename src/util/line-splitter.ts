/** The longest line a `LineSplitter` holds back waiting for its end; a longer one is given in pieces. */
const MAX_LINE_BYTES = 64 * 1024

const NEWLINE = 0x0a

/**
 * Cuts a child's output into whole lines as it streams, so each can be shown with a prefix and
 * lines of concurrent children never mix mid-line. Lines are split on bytes, so a character
 * split across two chunks stays whole. `end` gives what is left after the last newline.
 *
 * @example
 * const lines = new LineSplitter((line) => out.write(`${site}: ${line}\n`))
 * child.stdout.on('data', (chunk) => lines.push(chunk))
 * child.stdout.on('close', () => lines.end())
 */
export class LineSplitter {
  readonly #onLine: (line: string) => void
  #held: Buffer[] = []
  #heldBytes = 0

  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine
  }

  push(chunk: Buffer): void {
    let start = 0
    for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
      this.#give(chunk.subarray(start, end))
      start = end + 1
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start)
      // A copy: the rest must not keep the whole chunk alive.
      this.#held.push(Buffer.from(rest))
      this.#heldBytes += rest.length
      if (this.#heldBytes >= MAX_LINE_BYTES) this.#give(Buffer.alloc(0))
    }
  }

  /** Gives the last line when the output did not end with a newline. */
  end(): void {
    if (this.#heldBytes > 0) this.#give(Buffer.alloc(0))
  }

  #give(tail: Buffer): void {
    const line = this.#heldBytes === 0 ? tail : Buffer.concat([...this.#held, tail])
    this.#held = []
    this.#heldBytes = 0
    this.#onLine(line.toString('utf8').replace(/\r$/, ''))
  }
}
