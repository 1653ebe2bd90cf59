import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStateDb, type StateDb } from '../host/src/storage/db.js';
import { KvStore, prefixUpperBound } from '../host/src/views/kv-store.js';

const dirs: string[] = [];
const opened: StateDb[] = [];

function open(dir?: string): { state: StateDb; kv: KvStore; dir: string } {
  const stateDir = dir ?? mkdtempSync(join(tmpdir(), 'ice-kv-'));
  if (dir === undefined) dirs.push(stateDir);
  const state = openStateDb(stateDir);
  opened.push(state);
  return { state, kv: new KvStore(state), dir: stateDir };
}

afterEach(() => {
  for (const state of opened.splice(0)) if (state.db.open) state.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('KvStore', () => {
  it('gets, sets, overwrites and deletes values', () => {
    const { kv } = open();
    expect(kv.get('counter', 'count')).toBeUndefined();
    kv.set('counter', 'count', '1');
    expect(kv.get('counter', 'count')).toBe('1');
    kv.set('counter', 'count', '2');
    expect(kv.get('counter', 'count')).toBe('2');
    kv.set('counter', 'empty', '');
    expect(kv.get('counter', 'empty')).toBe('');
    expect(kv.delete('counter', 'count')).toBe(true);
    expect(kv.delete('counter', 'count')).toBe(false);
    expect(kv.get('counter', 'count')).toBeUndefined();
  });

  it('keeps values exactly, including unicode, NUL and large values', () => {
    const { kv } = open();
    const values = ['héllo wörld', '日本語', '😀 emoji', 'a\u0000b', '{"json":[1,2,3]}', 'x'.repeat(1 << 20)];
    values.forEach((value, i) => kv.set('ns', `k${i}`, value));
    values.forEach((value, i) => expect(kv.get('ns', `k${i}`)).toBe(value));
  });

  it('isolates namespaces', () => {
    const { kv } = open();
    kv.set('alice', 'secret', 'a');
    kv.set('bob', 'secret', 'b');
    kv.set('alice2', 'x', 'c');
    expect(kv.get('alice', 'secret')).toBe('a');
    expect(kv.get('bob', 'secret')).toBe('b');
    expect(kv.keys('alice', '', 10)).toEqual(['secret']);
    expect(kv.delete('bob', 'secret')).toBe(true);
    expect(kv.get('alice', 'secret')).toBe('a');
    expect(kv.keys('bob', '', 10)).toEqual([]);
  });

  it('lists keys by prefix, sorted, up to the limit', () => {
    const { kv } = open();
    for (const key of ['user/2', 'user/10', 'user/1', 'users', 'user', 'admin/1', 'uses']) kv.set('ns', key, 'v');
    expect(kv.keys('ns', 'user/', 10)).toEqual(['user/1', 'user/10', 'user/2']);
    expect(kv.keys('ns', 'user', 10)).toEqual(['user', 'user/1', 'user/10', 'user/2', 'users']);
    expect(kv.keys('ns', 'user', 2)).toEqual(['user', 'user/1']);
    expect(kv.keys('ns', 'user', 0)).toEqual([]);
    expect(kv.keys('ns', '', 100)).toEqual(['admin/1', 'user', 'user/1', 'user/10', 'user/2', 'users', 'uses']);
    expect(kv.keys('ns', 'nope', 10)).toEqual([]);
  });

  it('treats % and _ in prefixes literally', () => {
    const { kv } = open();
    for (const key of ['a%b', 'a%%', 'a_b', 'axb', 'aXb', 'a\\b', 'a*b', 'a?']) kv.set('ns', key, 'v');
    expect(kv.keys('ns', 'a%', 10)).toEqual(['a%%', 'a%b']);
    expect(kv.keys('ns', 'a_', 10)).toEqual(['a_b']);
    expect(kv.keys('ns', '%', 10)).toEqual([]);
    expect(kv.keys('ns', '_', 10)).toEqual([]);
    expect(kv.keys('ns', 'a\\', 10)).toEqual(['a\\b']);
    expect(kv.keys('ns', 'a*', 10)).toEqual(['a*b']);
    expect(kv.keys('ns', 'ax', 10)).toEqual(['axb']);
  });

  it('handles unicode keys and prefixes, astral characters included, in code point order', () => {
    const { kv } = open();
    const keys = ['k', 'k\uffff', 'k😀', 'k😀x', 'k\u{10ffff}', 'k\u{10ffff}z', 'ké', 'l', '日本', '日本語', '😀', '😁'];
    for (const key of keys) kv.set('ns', key, key);
    for (const key of keys) expect(kv.get('ns', key)).toBe(key);
    // Code point order: é (U+E9) < U+FFFF < 😀 (U+1F600) < U+10FFFF.
    expect(kv.keys('ns', 'k', 20)).toEqual(['k', 'ké', 'k\uffff', 'k😀', 'k😀x', 'k\u{10ffff}', 'k\u{10ffff}z']);
    expect(kv.keys('ns', 'k😀', 20)).toEqual(['k😀', 'k😀x']);
    expect(kv.keys('ns', 'k\u{10ffff}', 20)).toEqual(['k\u{10ffff}', 'k\u{10ffff}z']);
    expect(kv.keys('ns', '日本', 20)).toEqual(['日本', '日本語']);
    expect(kv.keys('ns', '😀', 20)).toEqual(['😀']);
  });

  it('rejects a negative or fractional limit', () => {
    const { kv } = open();
    expect(() => kv.keys('ns', '', -1)).toThrow(RangeError);
    expect(() => kv.keys('ns', '', 1.5)).toThrow('limit must be a non-negative integer');
  });

  it('persists across reopening the state directory', () => {
    const first = open();
    first.kv.set('counter', 'count', '41');
    first.kv.set('counter', 'gone', 'x');
    first.kv.delete('counter', 'gone');
    first.state.close();
    const second = open(first.dir);
    expect(second.kv.get('counter', 'count')).toBe('41');
    expect(second.kv.keys('counter', '', 10)).toEqual(['count']);
  });

  it('sees writes from a second connection to the same file', () => {
    const first = open();
    const second = open(first.dir);
    first.kv.set('ns', 'a', '1');
    expect(second.kv.get('ns', 'a')).toBe('1');
    second.kv.set('ns', 'a', '2');
    expect(first.kv.get('ns', 'a')).toBe('2');
  });

  it('rolls back writes made in a transaction that throws', () => {
    const { state, kv } = open();
    kv.set('ns', 'a', '1');
    expect(() =>
      state.transaction(() => {
        kv.set('ns', 'a', '2');
        kv.set('ns', 'b', '3');
        kv.delete('ns', 'a');
        throw new Error('abort');
      }),
    ).toThrow('abort');
    expect(kv.get('ns', 'a')).toBe('1');
    expect(kv.get('ns', 'b')).toBeUndefined();
    expect(state.transaction(() => kv.delete('ns', 'a'))).toBe(true);
  });
});

describe('prefixUpperBound', () => {
  it('increments the last code point', () => {
    expect(prefixUpperBound('abc')).toBe('abd');
    expect(prefixUpperBound('a%')).toBe('a&');
    expect(prefixUpperBound('k\uffff')).toBe('k\u{10000}');
    expect(prefixUpperBound('k😀')).toBe('k😁');
    expect(prefixUpperBound('k\ud7ff')).toBe('k\ue000');
  });

  it('drops trailing U+10FFFF and has no bound for an empty or all-U+10FFFF prefix', () => {
    expect(prefixUpperBound('a\u{10ffff}')).toBe('b');
    expect(prefixUpperBound('')).toBeUndefined();
    expect(prefixUpperBound('\u{10ffff}\u{10ffff}')).toBeUndefined();
  });
});
