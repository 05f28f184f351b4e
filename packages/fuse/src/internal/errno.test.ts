import { constants } from 'node:os';
import { FS_ERROR_CODES, FsError } from '@redisfs/store';
import { describe, expect, it, vi } from 'vitest';
import { FuseOpError, errnoOf, toErrno } from './errno.js';

describe('toErrno', () => {
  it.each(FS_ERROR_CODES)('maps FsError %s to its negative errno', (code) => {
    const onUnexpected = vi.fn();
    expect(toErrno(new FsError(code, 'x'), onUnexpected)).toBe(-constants.errno[code]);
    expect(onUnexpected).not.toHaveBeenCalled();
  });

  it('maps FuseOpError codes', () => {
    expect(toErrno(new FuseOpError('EBADF'))).toBe(-constants.errno.EBADF);
    expect(toErrno(new FuseOpError('EOPNOTSUPP'))).toBe(-constants.errno.EOPNOTSUPP);
    expect(errnoOf('ENODATA')).toBe(constants.errno.ENODATA);
  });

  it.each([
    ['a plain Error', new Error('boom')],
    ['a TypeError', new TypeError('bug')],
    ['a string', 'oops'],
    ['undefined', undefined],
    ['an object with an unknown code', Object.assign(new Error('x'), { code: 'ECONNRESET' })],
  ])('answers EIO and reports %s as unexpected', (_label, err) => {
    const onUnexpected = vi.fn();
    expect(toErrno(err, onUnexpected)).toBe(-constants.errno.EIO);
    expect(onUnexpected).toHaveBeenCalledWith(err);
  });
});
