const os = require('os')
const fs = require('fs')
const path = require('path')
const { exec } = require('child_process')

const Nanoresource = require('nanoresource')
const { beforeMount, beforeUnmount, configure, unconfigure, isConfigured } = require('fuse-shared-library')

// redisfs patch: always load the addon built from source at install time
// (`node-gyp rebuild`), never the upstream prebuild, whose stat/utimens
// encoding differs from this patched index.js.
const binding = require('./build/Release/fuse.node')

const IS_OSX = os.platform() === 'darwin'
const OSX_FOLDER_ICON = '/System/Library/CoreServices/CoreTypes.bundle/Contents/Resources/GenericFolderIcon.icns'
const HAS_FOLDER_ICON = IS_OSX && fs.existsSync(OSX_FOLDER_ICON)
const DEFAULT_TIMEOUT = 15 * 1000
const TIMEOUT_ERRNO = IS_OSX ? -60 : -110
const ENOTCONN = IS_OSX ? -57 : -107

const OpcodesAndDefaults = new Map([
  ['init', {
    op: binding.op_init
  }],
  ['error', {
    op: binding.op_error
  }],
  ['access', {
    op: binding.op_access,
    defaults: [0]
  }],
  ['statfs', {
    op: binding.op_statfs,
    defaults: [getStatfsArray()]
  }],
  ['fgetattr', {
    op: binding.op_fgetattr,
    defaults: [getStatArray()]
  }],
  ['getattr', {
    op: binding.op_getattr,
    defaults: [getStatArray()]
  }],
  ['flush', {
    op: binding.op_flush
  }],
  ['fsync', {
    op: binding.op_fsync
  }],
  ['fsyncdir', {
    op: binding.op_fsyncdir
  }],
  ['readdir', {
    op: binding.op_readdir,
    defaults: [[], []]
  }],
  ['truncate', {
    op: binding.op_truncate
  }],
  ['ftruncate', {
    op: binding.op_ftruncate
  }],
  ['utimens', {
    op: binding.op_utimens
  }],
  ['readlink', {
    op: binding.op_readlink,
    defaults: ['']
  }],
  ['chown', {
    op: binding.op_chown
  }],
  ['chmod', {
    op: binding.op_chmod
  }],
  ['mknod', {
    op: binding.op_mknod
  }],
  ['setxattr', {
    op: binding.op_setxattr
  }],
  ['getxattr', {
    op: binding.op_getxattr
  }],
  ['listxattr', {
    op: binding.op_listxattr
  }],
  ['removexattr', {
    op: binding.op_removexattr
  }],
  ['open', {
    op: binding.op_open,
    defaults: [0]
  }],
  ['opendir', {
    op: binding.op_opendir,
    defaults: [0]
  }],
  ['read', {
    op: binding.op_read,
    defaults: [0]
  }],
  ['write', {
    op: binding.op_write,
    defaults: [0]
  }],
  ['release', {
    op: binding.op_release
  }],
  ['releasedir', {
    op: binding.op_releasedir
  }],
  ['create', {
    op: binding.op_create,
    defaults: [0]
  }],
  ['unlink', {
    op: binding.op_unlink
  }],
  ['rename', {
    op: binding.op_rename
  }],
  ['link', {
    op: binding.op_link
  }],
  ['symlink', {
    op: binding.op_symlink
  }],
  ['mkdir', {
    op: binding.op_mkdir
  }],
  ['rmdir', {
    op: binding.op_rmdir
  }],
  // redisfs patch: fcntl byte-range locks and flock(2) locks
  ['lock', {
    op: binding.op_lock
  }],
  ['flock', {
    op: binding.op_flock
  }]
])

// redisfs patch: lock/flock requests that may wait for another owner (F_SETLKW, flock without
// LOCK_NB) can take minutes: the per-call timer never applies to them (they end when the
// handler answers, e.g. -EINTR once interrupted() says the caller got a signal).
function mayWait (name, args) {
  if (name === 'lock') return args[2] === 'setlkw'
  if (name === 'flock') return args[3] === true
  return false
}

const LOCK_TYPES = new Set(['R', 'W', 'U'])

// redisfs patch: paths are byte strings: latin1, one char per byte (U+0000..U+00FF), never
// decoded as UTF-8, so names that are not valid UTF-8 stay distinct. Every path and name the
// ops get (readdir's names, readlink's target, symlink's target, rename/link destinations,
// xattr names) and every one they give back, cacheAttr/staleAttr/uncacheAttr's paths included,
// is such a string: Buffer.from(path, 'latin1') is the bytes, bytes.toString('latin1') the
// string. The mountpoint (`mnt`) and option values stay ordinary (UTF-8) strings.
class Fuse extends Nanoresource {
  constructor (mnt, ops, opts = {}) {
    super()

    this.opts = opts
    this.mnt = path.resolve(mnt)
    this.ops = ops
    this.timeout = opts.timeout === false ? 0 : (opts.timeout || DEFAULT_TIMEOUT)

    this._force = !!opts.force
    this._mkdir = !!opts.mkdir
    this._thread = null
    this._handlers = this._makeHandlerArray()
    this._threads = new Set()
    this._posixLocksHeld = false

    const implemented = [binding.op_init, binding.op_error, binding.op_getattr]
    if (ops) {
      for (const [name, { op }] of OpcodesAndDefaults) {
        if (ops[name]) implemented.push(op)
      }
    }
    this._implemented = new Set(implemented)

    // Used to determine if the user-defined callback needs to be nextTick'd.
    this._sync = true

    // redisfs patch: { uid, gid, pid } of the process that made the current
    // request. Set right before each handler is called and reset to null when
    // its synchronous part returns: read it before the first await.
    this.context = null
  }

  _getImplementedArray () {
    const implemented = new Uint32Array(binding.OP_COUNT)
    for (const impl of this._implemented) {
      implemented[impl] = 1
    }
    return implemented
  }

  _fuseOptions () {
    const options = []

    const o = this.opts
    // redisfs patch: numeric options count when set, even to 0
    // (attr_timeout=0 and entry_timeout=0 disable the kernel caches).
    const has = (v) => v !== undefined && v !== null && v !== false

    if ((/\*|(^,)fuse-bindings(,$)/.test(process.env.DEBUG)) || o.debug) options.push('debug')
    if (o.ro) options.push('ro')
    if (o.allowOther) options.push('allow_other')
    if (o.allowRoot) options.push('allow_root')
    if (o.autoUnmount) options.push('auto_unmount')
    if (o.defaultPermissions) options.push('default_permissions')
    if (o.blkdev) options.push('blkdev')
    if (o.useIno) options.push('use_ino')
    if (o.bigWrites) options.push('big_writes')
    if (has(o.maxWrite)) options.push('max_write=' + o.maxWrite)
    if (has(o.blksize)) options.push('blksize=' + o.blksize)
    if (has(o.maxRead)) options.push('max_read=' + o.maxRead)
    if (has(o.fd)) options.push('fd=' + o.fd)
    if (has(o.userId)) options.push('user_id=' + o.userId)
    if (o.fsname) options.push('fsname=' + o.fsname)
    if (o.subtype) options.push('subtype=' + o.subtype)
    if (o.kernelCache) options.push('kernel_cache')
    if (o.autoCache) options.push('auto_cache')
    // libfuse parses umask as octal (umask=%o)
    if (has(o.umask)) options.push('umask=' + (typeof o.umask === 'number' ? o.umask.toString(8) : o.umask))
    if (has(o.uid)) options.push('uid=' + o.uid)
    if (has(o.gid)) options.push('gid=' + o.gid)
    if (has(o.entryTimeout)) options.push('entry_timeout=' + o.entryTimeout)
    if (has(o.negativeTimeout)) options.push('negative_timeout=' + o.negativeTimeout)
    if (has(o.attrTimeout)) options.push('attr_timeout=' + o.attrTimeout)
    if (has(o.acAttrTimeout)) options.push('ac_attr_timeout=' + o.acAttrTimeout)
    if (o.noforget) options.push('noforget')
    if (has(o.remember)) options.push('remember=' + o.remember)
    if (o.modules) options.push('modules=' + o.modules)
    // redisfs patch: unlink/rename over an open file removes it at once instead of renaming it
    // to .fuse_hidden*; its fd operations then get a null path (flag_nullpath_ok).
    if (o.hardRemove) options.push('hard_remove')

    if (this.opts.displayFolder && IS_OSX) { // only works on osx
      options.push('volname=' + path.basename(this.opts.name || this.mnt))
      if (HAS_FOLDER_ICON) options.push('volicon=' + OSX_FOLDER_ICON)
    }

    return options.length ? '-o' + options.join(',') : ''
  }

  _malloc (size) {
    const buf = Buffer.alloc(size)
    this._threads.add(buf)
    return buf
  }

  _makeHandlerArray () {
    const self = this
    const handlers = new Array(OpcodesAndDefaults.size)

    for (const [name, { op, defaults }] of OpcodesAndDefaults) {
      const nativeSignal = binding[`fuse_native_signal_${name}`]
      if (!nativeSignal) continue

      handlers[op] = makeHandler(name, op, defaults, nativeSignal)
    }

    return handlers

    function makeHandler (name, op, defaults, nativeSignal) {
      let to = self.timeout
      if (typeof to === 'object' && to) {
        const defaultTimeout = to.default || DEFAULT_TIMEOUT
        to = to[name]
        if (!to && to !== false) to = defaultTimeout
      }

      return function (nativeHandler, opCode, ...args) {
        // redisfs patch: the native side appends the caller's uid, gid, pid.
        const pid = args.pop()
        const gid = args.pop()
        const uid = args.pop()
        const sig = signal.bind(null, nativeHandler)
        const input = [...args]
        const boundSignal = to && !mayWait(name, args) ? autoTimeout(sig, input) : sig
        // redisfs patch: lock/flock end with a token of their FUSE request; the handler gets
        // interrupted() instead, which asks libfuse whether the kernel interrupted that request.
        if (name === 'lock' || name === 'flock') {
          const seq = args.pop()
          args.push(() => binding.fuse_native_interrupted(nativeHandler, seq))
        }
        const funcName = `_op_${name}`
        if (!self[funcName] || !self._implemented.has(op)) return boundSignal(-1, ...(defaults || []))
        self.context = Object.freeze({ uid, gid, pid })
        try {
          return self[funcName].apply(self, [boundSignal, ...args])
        } finally {
          self.context = null
        }
      }

      function signal (nativeHandler, err, ...args) {
        var arr = [nativeHandler, err, ...args]

        if (defaults) {
          while (arr.length > 2 && arr[arr.length - 1] === undefined) arr.pop()
          if (arr.length === 2) arr = arr.concat(defaults)
        }

        return process.nextTick(nativeSignal, ...arr)
      }

      function autoTimeout (cb, input) {
        let called = false
        const timeout = setTimeout(timeoutWrap, to, TIMEOUT_ERRNO)
        return timeoutWrap

        function timeoutWrap (err, ...args) {
          if (called) return
          called = true

          clearTimeout(timeout)

          if (err === TIMEOUT_ERRNO) {
            switch (name) {
              case 'write':
              case 'read':
                return cb(TIMEOUT_ERRNO, 0, input[2].buffer)
              case 'setxattr':
                return cb(TIMEOUT_ERRNO, input[2].buffer)
              case 'getxattr':
                return cb(TIMEOUT_ERRNO, input[2].buffer)
              case 'listxattr':
                return cb(TIMEOUT_ERRNO, input[1].buffer)
            }
          }

          cb(err, ...args)
        }
      }
    }
  }

  // Static methods

  static unmount (mnt, cb) {
    mnt = JSON.stringify(mnt)
    const cmd = IS_OSX ? `diskutil unmount force ${mnt}` : `fusermount -uz ${mnt}`
    exec(cmd, err => {
      if (err) return cb(err)
      return cb(null)
    })
  }

  // Debugging methods

  // Lifecycle methods

  _open (cb) {
    const self = this

    if (this._force) {
      return fs.stat(path.join(this.mnt, 'test'), (err, st) => {
        if (err && (err.errno === ENOTCONN || err.errno === Fuse.ENXIO)) return Fuse.unmount(this.mnt, open)
        return open()
      })
    }
    return open()

    function open () {
      // If there was an unmount error, continue attempting to mount (this is the best we can do)
      self._thread = Buffer.alloc(binding.sizeof_fuse_thread_t)
      binding.fuse_native_set_posix_locks_held(self._thread, self._posixLocksHeld)
      self._openCallback = cb

      const opts = self._fuseOptions()
      const implemented = self._getImplementedArray()

      return fs.stat(self.mnt, (err, stat) => {
        if (err && err.errno !== -2) return cb(err)
        if (err) {
          if (!self._mkdir) return cb(new Error('Mountpoint does not exist'))
          return fs.mkdir(self.mnt, { recursive: true }, err => {
            if (err) return cb(err)
            fs.stat(self.mnt, (err, stat) => {
              if (err) return cb(err)
              return onexists(stat)
            })
          })
        }
        if (!stat.isDirectory()) return cb(new Error('Mountpoint is not a directory'))
        return onexists(stat)
      })

      function onexists (stat) {
        fs.stat(path.join(self.mnt, '..'), (_, parent) => {
          if (parent && parent.dev !== stat.dev) return cb(new Error('Mountpoint in use'))
          try {
            // TODO: asyncify
            binding.fuse_native_mount(self.mnt, opts, self._thread, self, self._malloc, self._handlers, implemented)
          } catch (err) {
            return cb(err)
          }
        })
      }
    }
  }

  _close (cb) {
    const self = this

    Fuse.unmount(this.mnt, err => {
      if (err) {
        err.unmountFailure = true
        return cb(err)
      }
      nativeUnmount()
    })

    function nativeUnmount () {
      try {
        binding.fuse_native_unmount(self.mnt, self._thread)
      } catch (err) {
        return cb(err)
      }
      return cb(null)
    }
  }

  // Handlers

  _op_init (signal) {
    if (this._openCallback) {
      process.nextTick(this._openCallback, null)
      this._openCallback = null
    }
    if (!this.ops.init) {
      signal(0)
      return
    }
    this.ops.init(err => {
      return signal(err)
    })
  }

  _op_error (signal) {
    if (!this.ops.error) {
      signal(0)
      return
    }
    this.ops.error(err => {
      return signal(err)
    })
  }

  _op_statfs (signal, path) {
    this.ops.statfs(path, (err, statfs) => {
      if (err) return signal(err)
      const arr = getStatfsArray(statfs)
      return signal(0, arr)
    })
  }

  _op_getattr (signal, path) {
    if (!this.ops.getattr) {
      if (path !== '/') {
        signal(Fuse.EPERM)
      } else {
        signal(0, getStatArray({ mtime: new Date(0), atime: new Date(0), ctime: new Date(0), mode: 16877, size: 4096 }))
      }
      return
    }

    this.ops.getattr(path, (err, stat) => {
      if (err) return signal(err, getStatArray())
      return signal(0, getStatArray(stat))
    })
  }

  _op_fgetattr (signal, path, fd) {
    if (!this.ops.fgetattr) {
      if (path !== '/') {
        signal(Fuse.EPERM)
      } else {
        signal(0, getStatArray({ mtime: new Date(0), atime: new Date(0), ctime: new Date(0), mode: 16877, size: 4096 }))
      }
      return
    }
    // redisfs patch: upstream called ops.getattr(path) here
    this.ops.fgetattr(path, fd, (err, stat) => {
      if (err) return signal(err)
      return signal(0, getStatArray(stat))
    })
  }

  _op_access (signal, path, mode) {
    this.ops.access(path, mode, err => {
      return signal(err)
    })
  }

  _op_open (signal, path, flags) {
    this.ops.open(path, flags, (err, fd) => {
      return signal(err, fd)
    })
  }

  _op_opendir (signal, path, fh, flags) { // redisfs patch: upstream took fh as flags
    this.ops.opendir(path, flags, (err, fd) => {
      return signal(err, fd)
    })
  }

  // redisfs patch: flags are the open(2) flags (O_CREAT, O_EXCL, O_TRUNC, access mode...).
  _op_create (signal, path, mode, flags) {
    this.ops.create(path, mode, flags, (err, fd) => {
      return signal(err, fd)
    })
  }

  // redisfs patch: atime/mtime are bigint nanoseconds since the epoch, or
  // undefined when that time must stay unchanged (UTIME_OMIT). UTIME_NOW
  // arrives already resolved to the current time.
  _op_utimens (signal, path, atime, mtime) {
    this.ops.utimens(path, atime, mtime, err => {
      return signal(err)
    })
  }

  // redisfs patch: flockOwner is the lock owner (16 hex digits) whose flock locks this last
  // close of a struct file drops (FUSE_RELEASE_FLOCK_UNLOCK), else null.
  _op_release (signal, path, fd, flockOwner) {
    this.ops.release(path, fd, flockOwner, err => {
      return signal(err)
    })
  }

  _op_releasedir (signal, path, fd) {
    this.ops.releasedir(path, fd, err => {
      return signal(err)
    })
  }

  _op_read (signal, path, fd, buf, len, offsetLow, offsetHigh) {
    this.ops.read(path, fd, buf, len, getDoubleArg(offsetLow, offsetHigh), (err, bytesRead) => {
      return signal(err, bytesRead || 0, buf.buffer)
    })
  }

  _op_write (signal, path, fd, buf, len, offsetLow, offsetHigh) {
    this.ops.write(path, fd, buf, len, getDoubleArg(offsetLow, offsetHigh), (err, bytesWritten) => {
      return signal(err, bytesWritten || 0, buf.buffer)
    })
  }

  _op_readdir (signal, path) {
    this.ops.readdir(path, (err, names, stats) => {
      if (err) return signal(err)
      if (stats) stats = stats.map(getStatArray)
      return signal(0, names, stats || [])
    })
  }

  _op_setxattr (signal, path, name, value, position, flags) {
    this.ops.setxattr(path, name, value, position, flags, err => {
      return signal(err, value.buffer)
    })
  }

  _op_getxattr (signal, path, name, valueBuf, position) {
    this.ops.getxattr(path, name, position, (err, value) => {
      if (!err) {
        if (!value) return signal(IS_OSX ? -93 : -61, valueBuf.buffer)
        // redisfs patch: a too small buffer is ERANGE (libfuse would over-read)
        if (valueBuf.length && value.length > valueBuf.length) return signal(Fuse.ERANGE, valueBuf.buffer)
        value.copy(valueBuf)
        return signal(value.length, valueBuf.buffer)
      }
      return signal(err, valueBuf.buffer)
    })
  }

  _op_listxattr (signal, path, listBuf) {
    this.ops.listxattr(path, (err, list) => {
      if (list && !err) {
        // redisfs patch: names are byte strings (latin1, one char per byte), as everywhere
        if (!listBuf.length) {
          let size = 0
          for (const name of list) size += Buffer.byteLength(name, 'latin1') + 1
          size += 128 // fuse yells if we do not signal room for some mac stuff also
          return signal(size, listBuf.buffer)
        }

        // redisfs patch: a too small buffer is ERANGE (libfuse would over-read)
        let needed = 0
        for (const name of list) needed += Buffer.byteLength(name, 'latin1') + 1
        if (needed > listBuf.length) return signal(Fuse.ERANGE, listBuf.buffer)

        let ptr = 0
        for (const name of list) {
          ptr += listBuf.write(name, ptr, 'latin1')
          listBuf[ptr++] = 0
        }

        return signal(ptr, listBuf.buffer)
      }
      return signal(err, listBuf.buffer)
    })
  }

  _op_removexattr (signal, path, name) {
    this.ops.removexattr(path, name, err => {
      return signal(err)
    })
  }

  _op_flush (signal, path, fd) {
    this.ops.flush(path, fd, err => {
      return signal(err)
    })
  }

  _op_fsync (signal, path, datasync, fd) {
    this.ops.fsync(path, datasync, fd, err => {
      return signal(err)
    })
  }

  _op_fsyncdir (signal, path, datasync, fd) {
    this.ops.fsyncdir(path, datasync, fd, err => {
      return signal(err)
    })
  }

  _op_truncate (signal, path, sizeLow, sizeHigh) {
    const size = getDoubleArg(sizeLow, sizeHigh)
    this.ops.truncate(path, size, err => {
      return signal(err)
    })
  }

  _op_ftruncate (signal, path, fd, sizeLow, sizeHigh) {
    const size = getDoubleArg(sizeLow, sizeHigh)
    this.ops.ftruncate(path, fd, size, err => {
      return signal(err)
    })
  }

  _op_readlink (signal, path) {
    this.ops.readlink(path, (err, linkname) => {
      return signal(err, linkname)
    })
  }

  _op_chown (signal, path, uid, gid) {
    this.ops.chown(path, uid, gid, err => {
      return signal(err)
    })
  }

  _op_chmod (signal, path, mode) {
    this.ops.chmod(path, mode, err => {
      return signal(err)
    })
  }

  _op_mknod (signal, path, mode, dev) {
    this.ops.mknod(path, mode, dev, err => {
      return signal(err)
    })
  }

  _op_unlink (signal, path) {
    this.ops.unlink(path, err => {
      return signal(err)
    })
  }

  _op_rename (signal, src, dest) {
    this.ops.rename(src, dest, err => {
      return signal(err)
    })
  }

  _op_link (signal, src, dest) {
    this.ops.link(src, dest, err => {
      return signal(err)
    })
  }

  _op_symlink (signal, src, dest) {
    this.ops.symlink(src, dest, err => {
      return signal(err)
    })
  }

  _op_mkdir (signal, path, mode) {
    this.ops.mkdir(path, mode, err => {
      return signal(err)
    })
  }

  _op_rmdir (signal, path) {
    this.ops.rmdir(path, err => {
      return signal(err)
    })
  }

  // redisfs patch: fcntl locks. lock = { type: 'R' | 'W' | 'U', start, len, pid } (len 0 = to
  // the end of the file; numbers are doubles, exact below 2^53); owner = 16 hex digits;
  // interrupted() tells whether the kernel interrupted this request (the caller got a signal),
  // false once answered. cb(err, lock): for 'getlk' the conflicting lock, or type 'U' (none).
  _op_lock (signal, path, fd, cmd, type, start, len, pid, owner, interrupted) {
    this.ops.lock(path, fd, cmd, { type, start, len, pid }, owner, interrupted, (err, lock) => {
      if (err || cmd !== 'getlk') return signal(err || 0)
      if (!lock || lock.type === 'U') return signal(0, 'U', 0, 0, 0)
      if (!LOCK_TYPES.has(lock.type)) return signal(Fuse.EIO)
      return signal(0, lock.type, lock.start || 0, lock.len || 0, lock.pid || 0)
    })
  }

  // redisfs patch: flock(2). op = { type: 'R' | 'W' | 'U', wait } (LOCK_SH / LOCK_EX /
  // LOCK_UN, wait = !LOCK_NB); owner and interrupted as for lock.
  _op_flock (signal, path, fd, type, wait, owner, interrupted) {
    this.ops.flock(path, fd, { type, wait }, owner, interrupted, err => {
      return signal(err || 0)
    })
  }

  // Public API

  mount (cb) {
    return this.open(cb)
  }

  unmount (cb) {
    return this.close(cb)
  }

  // redisfs patch: the attribute cache served in C by getattr/fgetattr (see fuse-native.c).
  // Its paths are byte strings, as the ops get them. cacheAttr(path, stat, ttlMs, noCapability): answer getattr(path) with stat for ttlMs,
  // without calling ops.getattr (and getxattr(path, 'security.capability') with ENODATA when
  // noCapability); uncacheAttr(path) and clearAttrCache() take effect before they return.
  cacheAttr (path, stat, ttlMs, noCapability) {
    if (this._thread) binding.fuse_native_attr_cache_set(this._thread, path, getStatArray(stat), ttlMs, noCapability ? 1 : 0)
  }

  // staleAttr(path): getattr of path goes to ops again; the noCapability answer stays.
  staleAttr (path) {
    if (this._thread) binding.fuse_native_attr_cache_stale(this._thread, path)
  }

  uncacheAttr (path) {
    if (this._thread) binding.fuse_native_attr_cache_delete(this._thread, path)
  }

  clearAttrCache () {
    if (this._thread) binding.fuse_native_attr_cache_clear(this._thread)
  }

  // setHandleClean(fd, clean): while clean, flush of that handle (each close(2)) answers 0 in C
  // without calling ops.flush. Effective before it returns; at most 4096 clean handles.
  setHandleClean (fd, clean) {
    if (this._thread) binding.fuse_native_set_handle_clean(this._thread, fd, !!clean)
  }

  // setPosixLocksHeld(held): while false (initially), lock(F_SETLK, F_UNLCK), which libfuse sends
  // on every close(2) when ops.lock exists, answers 0 in C without calling ops.lock.
  setPosixLocksHeld (held) {
    this._posixLocksHeld = !!held
    if (this._thread) binding.fuse_native_set_posix_locks_held(this._thread, this._posixLocksHeld)
  }

  errno (code) {
    return (code && Fuse[code.toUpperCase()]) || -1
  }
}

Fuse.EPERM = -1
Fuse.ENOENT = -2
Fuse.ESRCH = -3
Fuse.EINTR = -4
Fuse.EIO = -5
Fuse.ENXIO = -6
Fuse.E2BIG = -7
Fuse.ENOEXEC = -8
Fuse.EBADF = -9
Fuse.ECHILD = -10
Fuse.EAGAIN = -11
Fuse.ENOMEM = -12
Fuse.EACCES = -13
Fuse.EFAULT = -14
Fuse.ENOTBLK = -15
Fuse.EBUSY = -16
Fuse.EEXIST = -17
Fuse.EXDEV = -18
Fuse.ENODEV = -19
Fuse.ENOTDIR = -20
Fuse.EISDIR = -21
Fuse.EINVAL = -22
Fuse.ENFILE = -23
Fuse.EMFILE = -24
Fuse.ENOTTY = -25
Fuse.ETXTBSY = -26
Fuse.EFBIG = -27
Fuse.ENOSPC = -28
Fuse.ESPIPE = -29
Fuse.EROFS = -30
Fuse.EMLINK = -31
Fuse.EPIPE = -32
Fuse.EDOM = -33
Fuse.ERANGE = -34
Fuse.EDEADLK = -35
Fuse.ENAMETOOLONG = -36
Fuse.ENOLCK = -37
Fuse.ENOSYS = -38
Fuse.ENOTEMPTY = -39
Fuse.ELOOP = -40
Fuse.EWOULDBLOCK = -11
Fuse.ENOMSG = -42
Fuse.EIDRM = -43
Fuse.ECHRNG = -44
Fuse.EL2NSYNC = -45
Fuse.EL3HLT = -46
Fuse.EL3RST = -47
Fuse.ELNRNG = -48
Fuse.EUNATCH = -49
Fuse.ENOCSI = -50
Fuse.EL2HLT = -51
Fuse.EBADE = -52
Fuse.EBADR = -53
Fuse.EXFULL = -54
Fuse.ENOANO = -55
Fuse.EBADRQC = -56
Fuse.EBADSLT = -57
Fuse.EDEADLOCK = -35
Fuse.EBFONT = -59
Fuse.ENOSTR = -60
Fuse.ENODATA = -61
Fuse.ETIME = -62
Fuse.ENOSR = -63
Fuse.ENONET = -64
Fuse.ENOPKG = -65
Fuse.EREMOTE = -66
Fuse.ENOLINK = -67
Fuse.EADV = -68
Fuse.ESRMNT = -69
Fuse.ECOMM = -70
Fuse.EPROTO = -71
Fuse.EMULTIHOP = -72
Fuse.EDOTDOT = -73
Fuse.EBADMSG = -74
Fuse.EOVERFLOW = -75
Fuse.ENOTUNIQ = -76
Fuse.EBADFD = -77
Fuse.EREMCHG = -78
Fuse.ELIBACC = -79
Fuse.ELIBBAD = -80
Fuse.ELIBSCN = -81
Fuse.ELIBMAX = -82
Fuse.ELIBEXEC = -83
Fuse.EILSEQ = -84
Fuse.ERESTART = -85
Fuse.ESTRPIPE = -86
Fuse.EUSERS = -87
Fuse.ENOTSOCK = -88
Fuse.EDESTADDRREQ = -89
Fuse.EMSGSIZE = -90
Fuse.EPROTOTYPE = -91
Fuse.ENOPROTOOPT = -92
Fuse.EPROTONOSUPPORT = -93
Fuse.ESOCKTNOSUPPORT = -94
Fuse.EOPNOTSUPP = -95
Fuse.EPFNOSUPPORT = -96
Fuse.EAFNOSUPPORT = -97
Fuse.EADDRINUSE = -98
Fuse.EADDRNOTAVAIL = -99
Fuse.ENETDOWN = -100
Fuse.ENETUNREACH = -101
Fuse.ENETRESET = -102
Fuse.ECONNABORTED = -103
Fuse.ECONNRESET = -104
Fuse.ENOBUFS = -105
Fuse.EISCONN = -106
Fuse.ENOTCONN = -107
Fuse.ESHUTDOWN = -108
Fuse.ETOOMANYREFS = -109
Fuse.ETIMEDOUT = -110
Fuse.ECONNREFUSED = -111
Fuse.EHOSTDOWN = -112
Fuse.EHOSTUNREACH = -113
Fuse.EALREADY = -114
Fuse.EINPROGRESS = -115
Fuse.ESTALE = -116
Fuse.EUCLEAN = -117
Fuse.ENOTNAM = -118
Fuse.ENAVAIL = -119
Fuse.EISNAM = -120
Fuse.EREMOTEIO = -121
Fuse.EDQUOT = -122
Fuse.ENOMEDIUM = -123
Fuse.EMEDIUMTYPE = -124

// Forward configuration functions through the exported class.
Fuse.beforeMount = beforeMount
Fuse.beforeUnmount = beforeUnmount
Fuse.configure = configure
Fuse.unconfigure = unconfigure
Fuse.isConfigured = isConfigured

module.exports = Fuse

function getStatfsArray (statfs) {
  const ints = new Uint32Array(11)

  ints[0] = (statfs && statfs.bsize) || 0
  ints[1] = (statfs && statfs.frsize) || 0
  ints[2] = (statfs && statfs.blocks) || 0
  ints[3] = (statfs && statfs.bfree) || 0
  ints[4] = (statfs && statfs.bavail) || 0
  ints[5] = (statfs && statfs.files) || 0
  ints[6] = (statfs && statfs.ffree) || 0
  ints[7] = (statfs && statfs.favail) || 0
  ints[8] = (statfs && statfs.fsid) || 0
  ints[9] = (statfs && statfs.flag) || 0
  ints[10] = (statfs && statfs.namemax) || 0

  return ints
}

function setDoubleInt (arr, idx, num) {
  arr[idx] = num % 4294967296
  arr[idx + 1] = (num - arr[idx]) / 4294967296
}

function getDoubleArg (a, b) {
  return a + b * 4294967296
}

// redisfs patch: 64-bit values may be numbers or bigints.
function setUint64 (arr, idx, num) {
  if (typeof num !== 'bigint') return setDoubleInt(arr, idx, num)
  num = BigInt.asUintN(64, num)
  arr[idx] = Number(num & 0xffffffffn)
  arr[idx + 1] = Number(num >> 32n)
}

// redisfs patch: a time is a bigint of nanoseconds since the epoch, or (as
// upstream) a Date or a number of milliseconds; missing means now.
function toTimeNs (t) {
  if (typeof t === 'bigint') return t
  if (t === undefined || t === null) t = Date.now()
  else if (typeof t !== 'number') t = t.getTime()
  if (!Number.isFinite(t)) t = 0
  const ms = Math.floor(t)
  return BigInt(ms) * 1000000n + BigInt(Math.round((t - ms) * 1e6))
}

// Seconds as int64 (2 uint32s) then nanoseconds, matching uint32s_to_timespec.
function setTime (arr, idx, t) {
  const ns = toTimeNs(t)
  let sec = ns / 1000000000n
  let nsec = ns % 1000000000n
  if (nsec < 0n) {
    nsec += 1000000000n
    sec -= 1n
  }
  setUint64(arr, idx, sec)
  arr[idx + 2] = Number(nsec)
}

// redisfs patch: ino is 64-bit and times carry nanoseconds; the layout must
// match populate_stat in fuse-native.c.
function getStatArray (stat) {
  const ints = new Uint32Array(22)

  ints[0] = (stat && stat.mode) || 0
  ints[1] = (stat && stat.uid) || 0
  ints[2] = (stat && stat.gid) || 0
  setUint64(ints, 3, (stat && stat.size) || 0)
  ints[5] = (stat && stat.dev) || 0
  ints[6] = (stat && stat.nlink) || 1
  setUint64(ints, 7, (stat && stat.ino) || 0)
  ints[9] = (stat && stat.rdev) || 0
  ints[10] = (stat && stat.blksize) || 0
  setUint64(ints, 11, (stat && stat.blocks) || 0)
  setTime(ints, 13, stat && stat.atime)
  setTime(ints, 16, stat && stat.mtime)
  setTime(ints, 19, stat && stat.ctime)

  return ints
}
