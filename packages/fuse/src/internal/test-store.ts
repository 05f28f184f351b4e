/**
 * Test-only: a Store made of a partial fake. The fake's members are type-checked against the
 * Store interface (an interface change fails the typecheck instead of drifting unseen), and any
 * member it does not fake throws when a handler under test calls it.
 */
import type { Store } from '@redisfs/store';

export function fakeStore<T extends Partial<Store>>(fake: T): Store & T {
  return new Proxy(fake, {
    get(target, prop, receiver) {
      if (prop in target) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      if (typeof prop === 'symbol' || prop === 'then') return undefined;
      return () => {
        throw new Error(`the fake store has no ${String(prop)}: a handler under test called it`);
      };
    },
  }) as Store & T;
}
