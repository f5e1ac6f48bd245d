import { describe, expect, it } from 'vitest';
import { TokenMap, userById } from './indexes.ts';
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

describe('userById', () => {
  it('answers as findUser does, for users added after the first lookup too', () => {
    const world = createWorld({ seed: 'index', now: NOW, users: [{ preset: 'new-york', id: 'USER01' }, { preset: 'sydney', id: 'USER02' }] });
    expect(userById(world, 'USER02')).toBe(findUser(world, 'USER02'));
    expect(userById(world, 'USER03')).toBeUndefined();
    const added = addUser(world, { preset: 'kolkata', id: 'USER03' });
    expect(userById(world, 'USER03')).toBe(added);
    expect(userById(world, 'USER01')).toBe(findUser(world, 'USER01'));
  });

  it('a list changed in place is indexed again', () => {
    const world = createWorld({ seed: 'index', now: NOW, users: [{ preset: 'new-york', id: 'USER01' }, { preset: 'sydney', id: 'USER02' }] });
    expect(userById(world, 'USER02')?.id).toBe('USER02');
    world.users.reverse();
    expect(userById(world, 'USER02')).toBe(world.users[0]);
    expect(userById(world, 'USER01')).toBe(world.users[1]);
  });
});
