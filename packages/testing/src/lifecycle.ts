/** Tying started things to the vitest test that started them. */
import { onTestFinished } from 'vitest';

/**
 * A test that times out never resumes, so its `await using` never disposes. When called inside a
 * running test, this also disposes `resource` when that test ends, pass or fail (dispose must be
 * idempotent). Outside a test (beforeAll), vitest has nothing to attach to and the caller's
 * afterAll must release it.
 */
export function disposeWhenTestEnds(resource: AsyncDisposable): void {
  try {
    onTestFinished(async () => {
      await resource[Symbol.asyncDispose]();
    });
  } catch {
    // not inside a running test
  }
}
