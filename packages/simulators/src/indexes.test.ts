import { describe, expect, it } from 'vitest';
import { TokenMap } from './indexes.ts';
import { addUser, createWorld, findUser } from './world/world.ts';

const NOW = Date.parse('2026-11-03T15:00:00Z');

describe('TokenMap', () => {
  it("knows each user's tokens through set, replace, delete and clear", () => {
    const tokens = new TokenMap<{ token: string; userId: string }>();
    tokens.set('a1', { token: 'a1', userId: 'A' });
    tokens.set('a2', { token: 'a2', userId: 'A' });
    tokens.set('b1', { token: 'b1', userId: 'B' });
    expect([...tokens.ofUser('A')].map((t) => t.token)).toEqual(['a1', 'a2']);
    // The same key set again for another user moves it.
    tokens.set('a2', { token: 'a2', userId: 'B' });
    expect([...tokens.ofUser('A')].map((t) => t.token)).toEqual(['a1']);
    expect([...tokens.ofUser('B')].map((t) => t.token)).toEqual(['b1', 'a2']);
    tokens.delete('a1');
    expect(tokens.ofUser('A').size).toBe(0);
    expect(tokens.get('a1')).toBeUndefined();
    tokens.clear();
    expect(tokens.ofUser('B').size).toBe(0);
    expect(tokens.size).toBe(0);
  });
});
