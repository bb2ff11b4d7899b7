/**
 * A last-in-first-out stack of undo actions. `run()` calls every action even when some
 * fail, and returns the errors so the caller can report the first.
 */
export class CleanupStack {
  readonly #actions: { label: string; action: () => unknown }[] = []

  push(label: string, action: () => unknown): void {
    this.#actions.push({ label, action })
  }

  get size(): number {
    return this.#actions.length
  }

  /** Forget every action (the work they would undo is now kept). */
  clear(): void {
    this.#actions.length = 0
  }

  async run(): Promise<{ label: string; error: unknown }[]> {
    const failures: { label: string; error: unknown }[] = []
    while (this.#actions.length > 0) {
      const { label, action } = this.#actions.pop()!
      try {
        await action()
      } catch (error) {
        failures.push({ label, error })
      }
    }
    return failures
  }
}
