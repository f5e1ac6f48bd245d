/**
 * Lookups by user for the simulators' hot paths. With 10,000 users (`pnpm bench --scale`), a scan
 * of every user or every token per request or per webhook pass costs more than the request.
 * The token map stays right whoever changes it: it updates itself on every `set`/`delete`/`clear`.
 */

/** A map of tokens by value that also knows each user's tokens. */
/** Always created empty: Map's constructor would call `set` before the index exists. */
export class TokenMap<T extends { userId: string }> extends Map<string, T> {
  #byUser = new Map<string, Set<T>>();

  override set(key: string, value: T): this {
    const previous = super.get(key);
    if (previous !== undefined) this.#unindex(previous);
    super.set(key, value);
    let set = this.#byUser.get(value.userId);
    if (!set) this.#byUser.set(value.userId, (set = new Set()));
    set.add(value);
    return this;
  }

  override delete(key: string): boolean {
    const previous = super.get(key);
    if (previous !== undefined) this.#unindex(previous);
    return super.delete(key);
  }

  override clear(): void {
    this.#byUser.clear();
    super.clear();
  }

  /** The user's tokens (live or not), in the order they were set. */
  ofUser(userId: string): ReadonlySet<T> {
    return this.#byUser.get(userId) ?? EMPTY;
  }

  #unindex(token: T): void {
    const set = this.#byUser.get(token.userId);
    set?.delete(token);
    if (set?.size === 0) this.#byUser.delete(token.userId);
  }
}

const EMPTY: ReadonlySet<never> = new Set();
