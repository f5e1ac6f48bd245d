import type { WorldUser } from './world/users.ts';
import type { World } from './world/world.ts';

/**
 * Lookups by user for the simulators' hot paths. With 10,000 users (`pnpm bench --scale`), a scan
 * of every user or every token per request or per webhook pass costs more than the request.
 * Both indexes stay right whoever changes what they index: the token map updates itself on
 * every `set`/`delete`/`clear`, and the user index checks each hit against the world's list.
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

interface UserIndex {
  /** Position in `world.users` by id. */
  position: Map<string, number>;
  /** How many of `world.users` are indexed (users are only ever appended: addUser). */
  count: number;
}

const userIndexes = new WeakMap<World, UserIndex>();

function rebuild(world: World): UserIndex {
  const index: UserIndex = { position: new Map(), count: 0 };
  userIndexes.set(world, index);
  return index;
}

/**
 * The world user with this id, as `findUser` answers, without scanning every user: a position
 * index per world, extended when users are added and rebuilt if a hit no longer matches.
 */
export function userById(world: World, id: string): WorldUser | undefined {
  let index = userIndexes.get(world) ?? rebuild(world);
  if (index.count > world.users.length) index = rebuild(world);
  for (; index.count < world.users.length; index.count += 1) {
    const user = world.users[index.count]!;
    // The first user with an id wins, as in findUser.
    if (!index.position.has(user.id)) index.position.set(user.id, index.count);
  }
  const at = index.position.get(id);
  if (at === undefined) return undefined;
  const user = world.users[at];
  if (user?.id === id) return user;
  // The list was changed in place: index it again.
  userIndexes.delete(world);
  return world.users.find((u) => u.id === id) && userById(world, id);
}
