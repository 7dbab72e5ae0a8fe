/** A set of event handlers. */
export class Listeners<T> {
  private readonly handlers = new Set<(value: T) => void>();

  /** Adds `handler`; the returned function removes it. */
  add(handler: (value: T) => void): () => void {
    // A wrapper, so that the same function added twice is called twice and removed once.
    const entry = (value: T): void => handler(value);
    this.handlers.add(entry);
    return () => {
      this.handlers.delete(entry);
    };
  }

  /**
   * Calls every handler with `value`. A handler that throws does not keep
   * the others from running: its error is thrown again on its own, outside
   * the client's dispatch (as an uncaught error).
   */
  emit(value: T): void {
    for (const handler of [...this.handlers]) {
      try {
        handler(value);
      } catch (error) {
        setTimeout(() => {
          throw error;
        }, 0);
      }
    }
  }

  /** Removes every handler. */
  clear(): void {
    this.handlers.clear();
  }
}
