#define FUSE_USE_VERSION 29

#include <uv.h>
#include <node_api.h>
#include <napi-macros.h>

#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <assert.h>

#include <fuse.h>
#include <fuse_opt.h>
#include <fuse_common.h>
#include <fuse_lowlevel.h>

#include <unistd.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <pthread.h>
#include <time.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/file.h>

static int IS_ARRAY_BUFFER_DETACH_SUPPORTED = 0;

napi_status napi_detach_arraybuffer(napi_env env, napi_value buf);

#define FUSE_NATIVE_CALLBACK(fn, blk)\
  napi_env env = ft->env;\
  napi_handle_scope scope;\
  napi_open_handle_scope(env, &scope);\
  napi_value ctx;\
  napi_get_reference_value(env, ft->ctx, &ctx);\
  napi_value callback;\
  napi_get_reference_value(env, fn, &callback);\
  blk\
  napi_close_handle_scope(env, scope);

// redisfs patch: the caller's uid/gid/pid are only valid in the FUSE thread
// while it serves the request, so capture them before handing off to JS.
#define FUSE_NATIVE_CAPTURE_CALLER(l)\
  {\
    struct fuse_context *caller = fuse_get_context();\
    l->caller_uid = caller->uid;\
    l->caller_gid = caller->gid;\
    l->caller_pid = caller->pid;\
  }

// redisfs patch: every handler gets the caller as 3 trailing arguments.
#define FUSE_NATIVE_PUSH_CALLER(env, l, argv, pos)\
  napi_create_uint32(env, l->caller_uid, &(argv[pos]));\
  napi_create_uint32(env, l->caller_gid, &(argv[pos + 1]));\
  napi_create_int32(env, l->caller_pid, &(argv[pos + 2]));

#define FUSE_NATIVE_HANDLER(name, blk)\
  fuse_thread_locals_t *l = get_thread_locals();\
  FUSE_NATIVE_CAPTURE_CALLER(l)\
  l->op = op_##name;\
  l->op_fn = fuse_native_dispatch_##name;\
  blk\
  uv_async_send(&(l->async));\
  uv_sem_wait(&(l->sem));\
  return l->res;

#define FUSE_METHOD(name, callbackArgs, signalArgs, signature, callBlk, callbackBlk, signalBlk)\
  static void fuse_native_dispatch_##name (uv_async_t* handle, fuse_thread_locals_t* l, fuse_thread_t* ft) {\
    uint32_t op = op_##name;\
    FUSE_NATIVE_CALLBACK(ft->handlers[op], {\
      napi_value argv[callbackArgs + 5];\
      napi_get_reference_value(env, l->self, &(argv[0]));\
      napi_create_uint32(env, l->op, &(argv[1]));\
      callbackBlk\
      FUSE_NATIVE_PUSH_CALLER(env, l, argv, callbackArgs + 2)\
      NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, callbackArgs + 5, argv, NULL)\
    })\
  }\
  NAPI_METHOD(fuse_native_signal_##name) {\
    NAPI_ARGV(signalArgs + 2)\
    NAPI_ARGV_BUFFER_CAST(fuse_thread_locals_t *, l, 0);\
    NAPI_ARGV_INT32(res, 1);\
    signalBlk\
    l->res = res;\
    uv_sem_post(&(l->sem));\
    return NULL;\
  }\
  static int fuse_native_##name signature {\
    FUSE_NATIVE_HANDLER(name, callBlk)\
  }

#define FUSE_METHOD_VOID(name, callbackArgs, signalArgs, signature, callBlk, callbackBlk)\
  FUSE_METHOD(name, callbackArgs, signalArgs, signature, callBlk, callbackBlk, {})

#define FUSE_UINT64_TO_INTS_ARGV(n, pos)\
  uint32_t low##pos = n % 4294967296;\
  uint32_t high##pos = (n - low##pos) / 4294967296;\
  napi_create_uint32(env, low##pos, &(argv[pos]));\
  napi_create_uint32(env, high##pos, &(argv[pos + 1]));


// Opcodes

static const uint32_t op_init = 0;
static const uint32_t op_error = 1;
static const uint32_t op_access = 2;
static const uint32_t op_statfs = 3;
static const uint32_t op_fgetattr = 4;
static const uint32_t op_getattr = 5;
static const uint32_t op_flush = 6;
static const uint32_t op_fsync = 7;
static const uint32_t op_fsyncdir = 8;
static const uint32_t op_readdir = 9;
static const uint32_t op_truncate = 10;
static const uint32_t op_ftruncate = 11;
static const uint32_t op_utimens = 12;
static const uint32_t op_readlink = 13;
static const uint32_t op_chown = 14;
static const uint32_t op_chmod = 15;
static const uint32_t op_mknod = 16;
static const uint32_t op_setxattr = 17;
static const uint32_t op_getxattr = 18;
static const uint32_t op_listxattr = 19;
static const uint32_t op_removexattr = 20;
static const uint32_t op_open = 21;
static const uint32_t op_opendir = 22;
static const uint32_t op_read = 23;
static const uint32_t op_write = 24;
static const uint32_t op_release = 25;
static const uint32_t op_releasedir = 26;
static const uint32_t op_create = 27;
static const uint32_t op_unlink = 28;
static const uint32_t op_rename = 29;
static const uint32_t op_link = 30;
static const uint32_t op_symlink = 31;
static const uint32_t op_mkdir = 32;
static const uint32_t op_rmdir = 33;
static const uint32_t op_lock = 34;
static const uint32_t op_flock = 35;

// Number of opcodes (size of the handler and "implemented" arrays; index.js uses the same).
#define OP_COUNT 36

// Data structures

typedef struct {
  napi_env env;
  pthread_t thread;
  pthread_attr_t attr;
  napi_ref ctx;
  napi_ref malloc;

  // Operation handlers
  napi_ref handlers[OP_COUNT];

  struct fuse *fuse;
  struct fuse_chan *ch;
  char mnt[1024];
  char mntopts[1024];
  int mounted;

  uv_async_t async;
  uv_mutex_t mut;
  uv_sem_t sem;

  // redisfs patch: attributes JS published, served by getattr in the FUSE thread.
  struct attr_cache *attr_cache;

  // redisfs patch: whether this mount holds any POSIX lock (fuse.setPosixLocksHeld). While 0,
  // lock(F_SETLK, F_UNLCK) (which libfuse sends on every flush, i.e. every close(2)) answers 0
  // in C. Written by the JS thread, read by FUSE threads: __atomic builtins.
  int posix_locks_held;
} fuse_thread_t;

typedef struct {
  napi_ref self;

  // Opcode
  uint32_t op;
  void *op_fn;

  // Payloads
  const char *path;
  const char *dest;
  char *linkname;
  struct fuse_file_info *info;
  const void *buf;
  off_t offset;
  size_t len;
  mode_t mode;
  dev_t dev;
  uid_t uid;
  gid_t gid;
  struct timespec atime;
  struct timespec mtime;
  int32_t res;

  // Caller of the current operation (fuse_get_context() in the FUSE thread)
  uid_t caller_uid;
  gid_t caller_gid;
  pid_t caller_pid;

  // Extended attributes
  const char *name;
  const char *value;
  char *list;
  size_t size;
  uint32_t position;
  int flags;

  // Stat + Statfs
  struct stat *stat;
  struct statvfs *statvfs;

  // Readdir
  fuse_fill_dir_t readdir_filler;

  // Locks (lock: fcntl command and struct flock; flock: LOCK_* operation)
  int lock_cmd;
  struct flock *lock;
  int flock_op;

  // The FUSE request being served by lock/flock, for fuse_req_interrupted (see capture_req).
  // Guarded by req_lock; NULL once the answer was posted.
  fuse_req_t req;
  uint32_t req_seq;

  // Internal bookkeeping
  fuse_thread_t *fuse;
  uv_sem_t sem;
  uv_async_t async;

} fuse_thread_locals_t;

static pthread_key_t thread_locals_key;
static fuse_thread_locals_t* get_thread_locals();


// redisfs patch: an attribute cache in C. JS publishes the stat it just answered for a path
// (fuse.cacheAttr), with how long it stays true, and forgets paths the moment they change
// (fuse.uncacheAttr / fuse.clearAttrCache). getattr and fgetattr answer a fresh entry here, in
// the FUSE thread, without the round trip to Node's main thread (most of a FUSE call's cost),
// and getxattr of security.capability when JS said the inode has none (flag ATTR_NO_CAPABILITY).
// The kernel's own attr cache stays off: libfuse 2 gives each name of a hard link its own
// kernel inode, so only the filesystem can drop every name of an inode at once.

#define ATTR_CACHE_BUCKETS 16384
#define ATTR_CACHE_MAX 100000

typedef struct attr_entry {
  struct attr_entry *next;
  uint64_t hash;
  uint64_t expires;
  struct stat st;
  uint32_t flags; // ATTR_NO_CAPABILITY
  char path[];
} attr_entry;

// The inode has no security.capability xattr: the kernel asks before every write(2).
#define ATTR_NO_CAPABILITY 1
// The stat is outdated (the file is being written); the flags above still hold.
#define ATTR_STALE 2

#define CLEAN_FH_MAX 4096

typedef struct attr_cache {
  pthread_mutex_t lock;
  uint32_t count;
  attr_entry *buckets[ATTR_CACHE_BUCKETS];
  // Open file handles with nothing to flush (fuse.setHandleClean): flush answers 0 in C.
  uint32_t clean_count;
  uint64_t clean[CLEAN_FH_MAX];
} attr_cache;

static uint64_t monotonic_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static uint64_t path_hash (const char *path) {
  uint64_t h = 1469598103934665603ull; // FNV-1a
  for (const unsigned char *p = (const unsigned char *) path; *p; p++) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  return h;
}

static attr_cache *attr_cache_new (void) {
  attr_cache *c = calloc(1, sizeof(attr_cache));
  if (c != NULL) pthread_mutex_init(&c->lock, NULL);
  return c;
}

// Unlinks and frees the entry for path, if any. Caller holds the lock.
static void attr_cache_remove_locked (attr_cache *c, const char *path, uint64_t h) {
  attr_entry **slot = &c->buckets[h & (ATTR_CACHE_BUCKETS - 1)];
  while (*slot != NULL) {
    attr_entry *e = *slot;
    if (e->hash == h && strcmp(e->path, path) == 0) {
      *slot = e->next;
      free(e);
      c->count--;
      return;
    }
    slot = &e->next;
  }
}

static void attr_cache_clear_locked (attr_cache *c) {
  for (int i = 0; i < ATTR_CACHE_BUCKETS; i++) {
    attr_entry *e = c->buckets[i];
    while (e != NULL) {
      attr_entry *next = e->next;
      free(e);
      e = next;
    }
    c->buckets[i] = NULL;
  }
  c->count = 0;
}

// Copies a fresh entry of path into st (when st is not NULL); returns its flags | 0x100 on a
// hit, 0 on a miss.
static int attr_cache_lookup (fuse_thread_t *ft, const char *path, struct stat *st) {
  attr_cache *c = ft->attr_cache;
  // A NULL path (an open file removed with hard_remove, see flag_nullpath_ok) is never cached.
  if (c == NULL || c->count == 0 || path == NULL) return 0;
  uint64_t h = path_hash(path);
  int hit = 0;
  pthread_mutex_lock(&c->lock);
  for (attr_entry *e = c->buckets[h & (ATTR_CACHE_BUCKETS - 1)]; e != NULL; e = e->next) {
    if (e->hash == h && strcmp(e->path, path) == 0) {
      if (e->expires > monotonic_ns()) {
        if (st != NULL) *st = e->st;
        hit = 0x100 | (int) e->flags;
      } else {
        attr_cache_remove_locked(c, path, h);
      }
      break;
    }
  }
  pthread_mutex_unlock(&c->lock);
  return hit;
}

static int attr_cache_get (fuse_thread_t *ft, const char *path, struct stat *st) {
  struct stat found;
  int hit = attr_cache_lookup(ft, path, &found);
  if (hit == 0 || (hit & ATTR_STALE)) return 0;
  *st = found;
  return 1;
}

static int attr_cache_no_capability (fuse_thread_t *ft, const char *path, const char *name) {
  return strcmp(name, "security.capability") == 0 && (attr_cache_lookup(ft, path, NULL) & ATTR_NO_CAPABILITY);
}

// Whether JS said handle fh has nothing to flush (close(2) then costs no call into JS).
static int fh_is_clean (fuse_thread_t *ft, uint64_t fh) {
  attr_cache *c = ft->attr_cache;
  if (c == NULL || c->clean_count == 0) return 0;
  int clean = 0;
  pthread_mutex_lock(&c->lock);
  for (uint32_t i = 0; i < c->clean_count; i++) {
    if (c->clean[i] == fh) {
      clean = 1;
      break;
    }
  }
  pthread_mutex_unlock(&c->lock);
  return clean;
}

static fuse_thread_t *current_fuse (void) {
  return (fuse_thread_t *) fuse_get_context()->private_data;
}

// redisfs patch: paths and names are bytes (every byte but NUL; '/' separates names), not
// UTF-8. JS sees each as a latin1 string, one char (U+0000..U+00FF) per byte, and gives them
// back the same way (FUSE_LATIN1), so every name round-trips exactly, valid UTF-8 or not:
// paths, readdir names, readlink/symlink targets, rename/link destinations, xattr names and the
// attribute cache's keys. (napi_*_utf8 turned each invalid sequence into U+FFFD: distinct names
// collapsed into one.) A char above U+00FF from JS would lose its high bits: JS must only
// pass back the strings it got, or Buffer#toString('latin1') of bytes.
static void byte_string_value (napi_env env, const char *s, napi_value *res) {
  napi_create_string_latin1(env, s, NAPI_AUTO_LENGTH, res);
}

// A byte string from JS (see byte_string_value) into `char name[size]`, NUL-terminated (cut
// at size - 1 bytes), like napi-macros' NAPI_UTF8.
#define FUSE_LATIN1(name, size, val) \
  char name[size]; \
  size_t name##_len; \
  if (napi_get_value_string_latin1(env, val, (char *) &name, size, &name##_len) != napi_ok) { \
    napi_throw_error(env, "EINVAL", "Expected string"); \
    return NULL; \
  }

// redisfs patch: with flag_nullpath_ok, libfuse calls the fd operations (read, write, flush,
// fsync, release, fgetattr, ftruncate, readdir, releasedir, fsyncdir, lock, flock) with
// path == NULL when the file has no name any more (removed while open, with hard_remove).
// JS gets null then.
static void path_value (napi_env env, const char *path, napi_value *res) {
  if (path == NULL) {
    napi_get_null(env, res);
    return;
  }
  byte_string_value(env, path, res);
}

// A lock owner (fi->lock_owner, uint64) as 16 lowercase hex digits.
static void lock_owner_value (napi_env env, uint64_t owner, napi_value *res) {
  char hex[17];
  snprintf(hex, sizeof(hex), "%016" PRIx64, owner);
  napi_create_string_utf8(env, hex, 16, res);
}

static const char *lock_type_name (short type) {
  if (type == F_RDLCK) return "R";
  if (type == F_WRLCK) return "W";
  return "U";
}

// -1 when name is not one of R, W, U.
static int lock_type_from_value (napi_env env, napi_value value) {
  char name[4] = { 0 };
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, name, sizeof(name), &len) != napi_ok || len != 1) return -1;
  if (name[0] == 'R') return F_RDLCK;
  if (name[0] == 'W') return F_WRLCK;
  if (name[0] == 'U') return F_UNLCK;
  return -1;
}

static int64_t int64_from_value (napi_env env, napi_value value) {
  int64_t n = 0;
  if (napi_get_value_int64(env, value, &n) != napi_ok) return 0;
  return n;
}

// redisfs patch: the FUSE request behind a call, to ask fuse_req_interrupted whether the kernel
// sent FUSE_INTERRUPT for it (a signal reached the process waiting in fcntl(F_SETLKW) or
// flock(2)). The high-level API does not expose the request: libfuse 2.9's fuse.c keeps it next
// to the context, as `struct fuse_context_i { struct fuse_context ctx; fuse_req_t req; }`, and
// fuse_get_context() returns &c->ctx (req_fuse_prepare sets c->req before calling us). This
// mirrors that private struct: it holds for libfuse 2.9.x (checked against 2.9.9's lib/fuse.c).
struct fuse_native_context_i {
  struct fuse_context ctx;
  fuse_req_t req;
};

// Guards l->req and l->req_seq of every thread: JS (interrupted()) reads them while a FUSE
// thread may start its next request. fuse_req_interrupted takes libfuse's session lock, so it
// is safe from the JS thread while the request is alive; it is alive until the FUSE thread
// replies, which it only does after release_req cleared l->req (see the lock/flock signals).
static pthread_mutex_t req_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t req_seq_next = 0;

static void capture_req (fuse_thread_locals_t *l) {
  fuse_req_t req = ((struct fuse_native_context_i *) fuse_get_context())->req;
  pthread_mutex_lock(&req_lock);
  if (++req_seq_next == 0) req_seq_next = 1;
  l->req = req;
  l->req_seq = req_seq_next;
  pthread_mutex_unlock(&req_lock);
}

static void release_req (fuse_thread_locals_t *l) {
  pthread_mutex_lock(&req_lock);
  l->req = NULL;
  pthread_mutex_unlock(&req_lock);
}

static int posix_locks_held (fuse_thread_t *ft) {
  return __atomic_load_n(&ft->posix_locks_held, __ATOMIC_SEQ_CST);
}

// Helpers
// TODO: Extract into a separate file.

static uint64_t uint32s_to_uint64 (uint32_t **ints) {
  uint64_t low = *((*ints)++);
  uint64_t high = *((*ints)++);
  return high * 4294967296 + low;
}

// redisfs patch: a time is 3 uint32s: seconds as a two's complement int64
// (low, high) and nanoseconds (0..999999999).
static void uint32s_to_timespec (struct timespec* ts, uint32_t** ints) {
  ts->tv_sec = (time_t) (int64_t) uint32s_to_uint64(ints);
  ts->tv_nsec = *((*ints)++);
}

// redisfs patch: resolve UTIME_NOW here; UTIME_OMIT is kept and becomes undefined in JS.
static struct timespec resolve_utime (const struct timespec* ts, const struct timespec* now) {
  if (ts->tv_nsec == UTIME_NOW) return *now;
  return *ts;
}

static void timespec_to_bigint_ns (napi_env env, const struct timespec* ts, napi_value* res) {
  if (ts->tv_nsec == UTIME_OMIT) {
    napi_get_undefined(env, res);
    return;
  }
  napi_create_bigint_int64(env, (int64_t) ts->tv_sec * 1000000000 + ts->tv_nsec, res);
}

static void populate_stat (uint32_t *ints, struct stat* stat) {
  stat->st_mode = *ints++;
  stat->st_uid = *ints++;
  stat->st_gid = *ints++;
  stat->st_size = uint32s_to_uint64(&ints);
  stat->st_dev = *ints++;
  stat->st_nlink = *ints++;
  stat->st_ino = uint32s_to_uint64(&ints);
  stat->st_rdev = *ints++;
  stat->st_blksize = *ints++;
  stat->st_blocks = uint32s_to_uint64(&ints);
#ifdef __APPLE__
  uint32s_to_timespec(&stat->st_atimespec, &ints);
  uint32s_to_timespec(&stat->st_mtimespec, &ints);
  uint32s_to_timespec(&stat->st_ctimespec, &ints);
#else
  uint32s_to_timespec(&stat->st_atim, &ints);
  uint32s_to_timespec(&stat->st_mtim, &ints);
  uint32s_to_timespec(&stat->st_ctim, &ints);
#endif
}

static void populate_statvfs (uint32_t *ints, struct statvfs* statvfs) {
  statvfs->f_bsize = *ints++;
  statvfs->f_frsize = *ints++;
  statvfs->f_blocks = *ints++;
  statvfs->f_bfree = *ints++;
  statvfs->f_bavail = *ints++;
  statvfs->f_files = *ints++;
  statvfs->f_ffree = *ints++;
  statvfs->f_favail = *ints++;
  statvfs->f_fsid = *ints++;
  statvfs->f_flag = *ints++;
  statvfs->f_namemax = *ints++;
}

// Methods

FUSE_METHOD(statfs, 1, 1, (const char * path, struct statvfs *statvfs), {
  l->path = path;
  l->statvfs = statvfs;
}, {
  path_value(env, l->path, &(argv[2]));
}, {
  NAPI_ARGV_BUFFER_CAST(uint32_t*, ints, 2)
  populate_statvfs(ints, l->statvfs);
})

FUSE_METHOD(getattr, 1, 1, (const char *path, struct stat *stat), {
  if (attr_cache_get(current_fuse(), path, stat)) return 0;
  l->path = path;
  l->stat = stat;
}, {
  path_value(env, l->path, &(argv[2]));
}, {
  NAPI_ARGV_BUFFER_CAST(uint32_t*, ints, 2)
  populate_stat(ints, l->stat);
})

FUSE_METHOD(fgetattr, 2, 1, (const char *path, struct stat *stat, struct fuse_file_info *info), {
  if (attr_cache_get(current_fuse(), path, stat)) return 0;
  l->path = path;
  l->stat = stat;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
}, {
  NAPI_ARGV_BUFFER_CAST(uint32_t*, ints, 2)
  populate_stat(ints, l->stat);
})

FUSE_METHOD_VOID(access, 2, 0, (const char *path, int mode), {
  l->path = path;
  l->mode = mode;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
})

FUSE_METHOD(open, 2, 1, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->flags, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
}, {
  NAPI_ARGV_INT32(fd, 2)
  if (fd != 0) {
    l->info->fh = fd;
  }
})

FUSE_METHOD(opendir, 3, 1, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
    napi_create_uint32(env, l->info->flags, &(argv[4]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
    napi_create_uint32(env, 0, &(argv[4]));
  }
}, {
  NAPI_ARGV_INT32(fd, 2)
  if (fd != 0) {
    l->info->fh = fd;
  }
})

// redisfs patch: create(path, mode, flags): flags are the open(2) flags (fi->flags).
FUSE_METHOD(create, 3, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {
  l->path = path;
  l->mode = mode;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
  napi_create_uint32(env, l->info != NULL ? (uint32_t) l->info->flags : 0, &(argv[4]));
}, {
  NAPI_ARGV_INT32(fd, 2)
  if (fd != 0) {
    l->info->fh = fd;
  }
})

FUSE_METHOD_VOID(utimens, 3, 0, (const char *path, const struct timespec tv[2]), {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  l->path = path;
  l->atime = resolve_utime(&tv[0], &now);
  l->mtime = resolve_utime(&tv[1], &now);
}, {
  path_value(env, l->path, &(argv[2]));
  timespec_to_bigint_ns(env, &(l->atime), &(argv[3]));
  timespec_to_bigint_ns(env, &(l->mtime), &(argv[4]));
})

// redisfs patch: release(path, fd, flockOwner): flockOwner is fi->lock_owner (hex) when the
// kernel asks to drop the flock locks of this struct file (FUSE_RELEASE_FLOCK_UNLOCK:
// fi->flock_release), else null.
FUSE_METHOD_VOID(release, 3, 0, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
  if (l->info != NULL && l->info->flock_release) {
    lock_owner_value(env, l->info->lock_owner, &(argv[4]));
  } else {
    napi_get_null(env, &(argv[4]));
  }
})

FUSE_METHOD_VOID(releasedir, 2, 0, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
})

FUSE_METHOD(read, 6, 2, (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info), {
  l->path = path;
  l->buf = buf;
  l->len = len;
  l->offset = offset;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->info->fh, &(argv[3]));
  napi_create_external_buffer(env, l->len, (char *) l->buf, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, l->len, &(argv[5]));
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 6)
}, {
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1) assert(napi_detach_arraybuffer(env, argv[3]) == napi_ok);
})

FUSE_METHOD(write, 6, 2, (const char *path, const char *buf, size_t len, off_t offset, struct fuse_file_info *info), {
  l->path = path;
  l->buf = buf;
  l->len = len;
  l->offset = offset;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->info->fh, &(argv[3]));
  napi_create_external_buffer(env, l->len, (char *) l->buf, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, l->len, &(argv[5]));
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 6)
}, {
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1) assert(napi_detach_arraybuffer(env, argv[3]) == napi_ok);
})

FUSE_METHOD(readdir, 1, 2, (const char *path, void *buf, fuse_fill_dir_t filler, off_t offset, struct fuse_file_info *info), {
  l->buf = buf;
  l->path = path;
  l->offset = offset;
  l->info = info;
  l->readdir_filler = filler;
}, {
  path_value(env, l->path, &(argv[2]));
}, {
  uint32_t stats_length;
  uint32_t names_length;
  napi_get_array_length(env, argv[3], &stats_length);
  napi_get_array_length(env, argv[2], &names_length);

  napi_value raw_names = argv[2];
  napi_value raw_stats = argv[3];

  if (names_length != stats_length) {
    NAPI_FOR_EACH(raw_names, raw_name) {
      FUSE_LATIN1(name, 1024, raw_name)
      int err = l->readdir_filler((char *) l->buf, name, NULL, 0);
      if (err == 1) {
        break;
      }
    }
  } else {
    NAPI_FOR_EACH(raw_names, raw_name) {
      FUSE_LATIN1(name, 1024, raw_name)
      napi_value raw_stat;
      napi_get_element(env, raw_stats, i, &raw_stat);

      NAPI_BUFFER_CAST(uint32_t*, stats_array, raw_stat);
      struct stat st;
      memset(&st, 0, sizeof(st));
      populate_stat(stats_array, &st);

      // TODO: It turns out readdirplus likely won't work with FUSE 29...
      // Metadata caching between readdir/getattr will be enabled when we upgrade fuse-shared-library
      int err = l->readdir_filler((char *) l->buf, name, (struct stat *) &st, 0);
      if (err == 1) {
        break;
      }
    }
  }
})

#ifdef __APPLE__

FUSE_METHOD(setxattr, 5, 1, (const char *path, const char *name, const char *value, size_t size, int flags, uint32_t position), {
  l->path = path;
  l->name = name;
  l->value = value;
  l->size = size;
  l->flags = flags;
  l->position = position;
}, {
  path_value(env, l->path, &(argv[2]));
  byte_string_value(env, l->name, &(argv[3]));
  napi_create_external_buffer(env, l->size, (char *) l->value, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, l->position, &(argv[5]));
  napi_create_uint32(env, l->flags, &(argv[6]));
}, {
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1) assert(napi_detach_arraybuffer(env, argv[2]) == napi_ok);
})

FUSE_METHOD(getxattr, 4, 1, (const char *path, const char *name, char *value, size_t size, uint32_t position), {
  l->path = path;
  l->name = name;
  l->value = value;
  l->size = size;
  l->position = position;
}, {
  path_value(env, l->path, &(argv[2]));
  byte_string_value(env, l->name, &(argv[3]));
  napi_create_external_buffer(env, l->size, (char *) l->value, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, l->position, &(argv[5]));
}, {
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1) assert(napi_detach_arraybuffer(env, argv[2]) == napi_ok);
})

#else

FUSE_METHOD(setxattr, 5, 1, (const char *path, const char *name, const char *value, size_t size, int flags), {
  l->path = path;
  l->name = name;
  l->value = value;
  l->size = size;
  l->flags = flags;
}, {
  path_value(env, l->path, &(argv[2]));
  byte_string_value(env, l->name, &(argv[3]));
  napi_create_external_buffer(env, l->size, (char *) l->value, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, 0, &(argv[5])); // normalize apis between mac and linux
  napi_create_uint32(env, l->flags, &(argv[6]));
}, {
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1) assert(napi_detach_arraybuffer(env, argv[2]) == napi_ok);
})

FUSE_METHOD(getxattr, 4, 1, (const char *path, const char *name, char *value, size_t size), {
  if (attr_cache_no_capability(current_fuse(), path, name)) return -ENODATA;
  l->path = path;
  l->name = name;
  l->value = value;
  l->size = size;
}, {
  path_value(env, l->path, &(argv[2]));
  byte_string_value(env, l->name, &(argv[3]));
  napi_create_external_buffer(env, l->size, (char *) l->value, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, 0, &(argv[5]));
}, {
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1) assert(napi_detach_arraybuffer(env, argv[2]) == napi_ok);
})

#endif

FUSE_METHOD(listxattr, 2, 1, (const char *path, char *list, size_t size), {
  l->path = path;
  l->list = list;
  l->size = size;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_external_buffer(env, l->size, l->list, NULL, NULL, &(argv[3]));
}, {
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1) assert(napi_detach_arraybuffer(env, argv[2]) == napi_ok);
})

FUSE_METHOD_VOID(removexattr, 2, 0, (const char *path, const char *name), {
  l->path = path;
  l->name = name;
}, {
  path_value(env, l->path, &(argv[2]));
  byte_string_value(env, l->name, &(argv[3]));
})

FUSE_METHOD_VOID(flush, 2, 0, (const char *path, struct fuse_file_info *info), {
  if (info != NULL && fh_is_clean(current_fuse(), info->fh)) return 0;
  l->path = path;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
})

FUSE_METHOD_VOID(fsync, 3, 0, (const char *path, int datasync, struct fuse_file_info *info), {
  l->path = path;
  l->mode = datasync;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[4]));
  } else {
    napi_create_uint32(env, 0, &(argv[4]));
  }
})

FUSE_METHOD_VOID(fsyncdir, 3, 0, (const char *path, int datasync, struct fuse_file_info *info), {
  l->path = path;
  l->mode = datasync;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[4]));
  } else {
    napi_create_uint32(env, 0, &(argv[4]));
  }
})


FUSE_METHOD_VOID(truncate, 3, 0, (const char *path, off_t size), {
  l->path = path;
  l->offset = size;
}, {
  path_value(env, l->path, &(argv[2]));
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 3)
})

FUSE_METHOD_VOID(ftruncate, 4, 0, (const char *path, off_t size, struct fuse_file_info *info), {
  l->path = path;
  l->offset = size;
  l->info = info;
}, {
  path_value(env, l->path, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 4)
})

FUSE_METHOD(readlink, 1, 1, (const char *path, char *linkname, size_t len), {
  l->path = path;
  l->linkname = linkname;
  l->len = len;
}, {
  path_value(env, l->path, &(argv[2]));
}, {
  FUSE_LATIN1(linkname, l->len, argv[2])
  strncpy(l->linkname, linkname, l->len);
})

FUSE_METHOD_VOID(chown, 3, 0, (const char *path, uid_t uid, gid_t gid), {
  l->path = path;
  l->uid = uid;
  l->gid = gid;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->uid, &(argv[3]));
  napi_create_uint32(env, l->gid, &(argv[4]));
})

FUSE_METHOD_VOID(chmod, 2, 0, (const char *path, mode_t mode), {
  l->path = path;
  l->mode = mode;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
})

FUSE_METHOD_VOID(mknod, 3, 0, (const char *path, mode_t mode, dev_t dev), {
  l->path = path;
  l->mode = mode;
  l->dev = dev;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
  napi_create_uint32(env, l->dev, &(argv[4]));
})

FUSE_METHOD_VOID(unlink, 1, 0, (const char *path), {
  l->path = path;
}, {
  path_value(env, l->path, &(argv[2]));
})

FUSE_METHOD_VOID(rename, 2, 0, (const char *path, const char *dest), {
  l->path = path;
  l->dest = dest;
}, {
  path_value(env, l->path, &(argv[2]));
  byte_string_value(env, l->dest, &(argv[3]));
})

FUSE_METHOD_VOID(link, 2, 0, (const char *path, const char *dest), {
  l->path = path;
  l->dest = dest;
}, {
  path_value(env, l->path, &(argv[2]));
  byte_string_value(env, l->dest, &(argv[3]));
})

FUSE_METHOD_VOID(symlink, 2, 0, (const char *path, const char *dest), {
  l->path = path;
  l->dest = dest;
}, {
  path_value(env, l->path, &(argv[2]));
  byte_string_value(env, l->dest, &(argv[3]));
})

FUSE_METHOD_VOID(mkdir, 2, 0, (const char *path, mode_t mode), {
  l->path = path;
  l->mode = mode;
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
})

FUSE_METHOD_VOID(rmdir, 1, 0, (const char *path), {
  l->path = path;
}, {
  path_value(env, l->path, &(argv[2]));
})

// redisfs patch: fcntl byte-range locks (libfuse 2.9 `lock`). JS gets
// (path, fd, cmd, type, start, len, pid, owner, seq): cmd 'getlk' | 'setlk' | 'setlkw', type
// 'R' | 'W' | 'U', start/len/pid from struct flock (libfuse gives l_whence = SEEK_SET; len 0 = to
// the end of the file), owner fi->lock_owner as hex, seq the token of fuse_native_interrupted.
// start and len become JS numbers (doubles): values >= 2^53 lose precision.
// The answer of 'getlk' is (type, start, len, pid), written back into struct flock.
// While the mount holds no POSIX lock (fuse.setPosixLocksHeld), F_SETLK of F_UNLCK answers 0
// here: libfuse's fuse_flush_common sends it on every flush (each close(2)).
FUSE_METHOD(lock, 9, 4, (const char *path, struct fuse_file_info *info, int cmd, struct flock *lock), {
  if (cmd == F_SETLK && lock->l_type == F_UNLCK && !posix_locks_held(current_fuse())) return 0;
  l->path = path;
  l->info = info;
  l->lock_cmd = cmd;
  l->lock = lock;
  capture_req(l);
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->info != NULL ? (uint32_t) l->info->fh : 0, &(argv[3]));
  const char *cmd = l->lock_cmd == F_GETLK ? "getlk" : (l->lock_cmd == F_SETLKW ? "setlkw" : "setlk");
  napi_create_string_utf8(env, cmd, NAPI_AUTO_LENGTH, &(argv[4]));
  napi_create_string_utf8(env, lock_type_name(l->lock->l_type), 1, &(argv[5]));
  napi_create_int64(env, (int64_t) l->lock->l_start, &(argv[6]));
  napi_create_int64(env, (int64_t) l->lock->l_len, &(argv[7]));
  napi_create_int32(env, (int32_t) l->lock->l_pid, &(argv[8]));
  lock_owner_value(env, l->info != NULL ? l->info->lock_owner : 0, &(argv[9]));
  napi_create_uint32(env, l->req_seq, &(argv[10]));
}, {
  release_req(l);
  if (res == 0 && l->lock_cmd == F_GETLK) {
    int type = argc > 2 ? lock_type_from_value(env, argv[2]) : F_UNLCK;
    if (type < 0) {
      res = -EIO;
    } else {
      l->lock->l_type = type;
      l->lock->l_whence = SEEK_SET;
      l->lock->l_start = argc > 3 ? (off_t) int64_from_value(env, argv[3]) : 0;
      l->lock->l_len = argc > 4 ? (off_t) int64_from_value(env, argv[4]) : 0;
      l->lock->l_pid = argc > 5 ? (pid_t) int64_from_value(env, argv[5]) : 0;
    }
  }
})

// redisfs patch: flock(2) locks (libfuse 2.9 `flock`). JS gets (path, fd, type, wait, owner,
// seq): type 'R' (LOCK_SH) | 'W' (LOCK_EX) | 'U' (LOCK_UN), wait = !LOCK_NB.
FUSE_METHOD(flock, 6, 0, (const char *path, struct fuse_file_info *info, int op), {
  l->path = path;
  l->info = info;
  l->flock_op = op;
  capture_req(l);
}, {
  path_value(env, l->path, &(argv[2]));
  napi_create_uint32(env, l->info != NULL ? (uint32_t) l->info->fh : 0, &(argv[3]));
  int kind = l->flock_op & (LOCK_SH | LOCK_EX | LOCK_UN);
  const char *type = kind == LOCK_SH ? "R" : (kind == LOCK_EX ? "W" : "U");
  napi_create_string_utf8(env, type, 1, &(argv[4]));
  napi_get_boolean(env, (l->flock_op & LOCK_NB) == 0, &(argv[5]));
  lock_owner_value(env, l->info != NULL ? l->info->lock_owner : 0, &(argv[6]));
  napi_create_uint32(env, l->req_seq, &(argv[7]));
}, {
  release_req(l);
})

static void fuse_native_dispatch_init (uv_async_t* handle, fuse_thread_locals_t* l, fuse_thread_t* ft) {\
  FUSE_NATIVE_CALLBACK(ft->handlers[op_init], {
    napi_value argv[5];

    napi_get_reference_value(env, l->self, &(argv[0]));
    napi_create_uint32(env, l->op, &(argv[1]));
    FUSE_NATIVE_PUSH_CALLER(env, l, argv, 2)

    NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, 5, argv, NULL);
  })
}

NAPI_METHOD(fuse_native_signal_init) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_locals_t *, l, 0);
  NAPI_ARGV_INT32(res, 1);
  l->res = res;
  uv_sem_post(&(l->sem));
  return NULL;
}

static void * fuse_native_init (struct fuse_conn_info *conn) {
  fuse_thread_locals_t *l = get_thread_locals();
  FUSE_NATIVE_CAPTURE_CALLER(l)

  l->op = op_init;
  l->op_fn = fuse_native_dispatch_init;

  uv_async_send(&(l->async));
  uv_sem_wait(&(l->sem));

  return l->fuse;
}

// Top-level dispatcher

static void fuse_native_dispatch (uv_async_t* handle) {
  fuse_thread_locals_t *l = (fuse_thread_locals_t *) handle->data;
  fuse_thread_t *ft = l->fuse;
  void (*fn)(uv_async_t *, fuse_thread_locals_t *, fuse_thread_t *) = l->op_fn;

  fn(handle, l, ft);
}

static void fuse_native_async_init (uv_async_t* handle) {
  fuse_thread_t *ft = (fuse_thread_t *) handle->data;
  fuse_thread_locals_t *l;

  FUSE_NATIVE_CALLBACK(ft->malloc, {
    napi_value argv[1];
    napi_create_uint32(ft->env, (uint32_t) sizeof(fuse_thread_locals_t), &(argv[0]));

    napi_value buf;
    NAPI_MAKE_CALLBACK(ft->env, NULL, ctx, callback, 1, argv, &buf);

    size_t l_len;

    napi_get_buffer_info(env, buf, (void **) &l, &l_len);
    napi_create_reference(env, buf, 1, &(l->self));
  })


  int err = uv_async_init(uv_default_loop(), &(l->async), (uv_async_cb) fuse_native_dispatch);
  assert(err >= 0);

  uv_unref((uv_handle_t *) &(l->async));

  uv_sem_init(&(l->sem), 0);
  l->async.data = l;
  ft->async.data = l;
  l->fuse = ft;

  uv_sem_post(&(ft->sem));
}

static fuse_thread_locals_t* get_thread_locals () {
  struct fuse_context *ctx = fuse_get_context();
  fuse_thread_t *ft = (fuse_thread_t *) ctx->private_data;

  void *data = pthread_getspecific(thread_locals_key);

  if (data != NULL) {
    return (fuse_thread_locals_t *) data;
  }

  // Need to lock the mutation of l->async.
  uv_mutex_lock(&(ft->mut));
  ft->async.data = ft;

  // Notify the main thread to uv_async_init l->async.
  uv_async_send(&(ft->async));
  uv_sem_wait(&(ft->sem));

  fuse_thread_locals_t *l = (fuse_thread_locals_t*) ft->async.data;

  pthread_setspecific(thread_locals_key, (void *) l);
  uv_mutex_unlock(&(ft->mut));

  return l;
}

static void* start_fuse_thread (void *data) {
  fuse_thread_t *ft = (fuse_thread_t *) data;
  fuse_loop_mt(ft->fuse);

  fuse_unmount(ft->mnt, ft->ch);
  fuse_session_remove_chan(ft->ch);
  fuse_destroy(ft->fuse);

  return NULL;
}

// The mountpoint and the options stay UTF-8 (unlike the paths below it, see byte_string_value):
// they come from the command line and the caller's options, which Node holds decoded.
NAPI_METHOD(fuse_native_mount) {
  NAPI_ARGV(7)

  NAPI_ARGV_UTF8(mnt, 1024, 0);
  NAPI_ARGV_UTF8(mntopts, 1024, 1);
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 2);
  napi_create_reference(env, argv[3], 1, &(ft->ctx));
  napi_create_reference(env, argv[4], 1, &(ft->malloc));
  napi_value handlers = argv[5];
  NAPI_ARGV_BUFFER_CAST(uint32_t *, implemented, 6)

  for (int i = 0; i < OP_COUNT; i++) {
    ft->handlers[i] = NULL;
  }

  NAPI_FOR_EACH(handlers, handler) {
    napi_create_reference(env, handler, 1, &ft->handlers[i]);
  }

  ft->env = env;

  struct fuse_operations ops = { };
  // redisfs patch: let utimens see UTIME_OMIT/UTIME_NOW, so a change of only
  // one of atime/mtime reaches JS (FUSE 2 drops it otherwise).
  ops.flag_utime_omit_ok = 1;
  // redisfs patch: an open file removed with hard_remove has no path; its fd operations are
  // then called with path == NULL (passed to JS as null) instead of failing with ENOENT.
  ops.flag_nullpath_ok = 1;
  if (implemented[op_access]) ops.access = fuse_native_access;
  if (implemented[op_truncate]) ops.truncate = fuse_native_truncate;
  if (implemented[op_ftruncate]) ops.ftruncate = fuse_native_ftruncate;
  if (implemented[op_getattr]) ops.getattr = fuse_native_getattr;
  if (implemented[op_fgetattr]) ops.fgetattr = fuse_native_fgetattr;
  if (implemented[op_flush]) ops.flush = fuse_native_flush;
  if (implemented[op_fsync]) ops.fsync = fuse_native_fsync;
  if (implemented[op_fsyncdir]) ops.fsyncdir = fuse_native_fsyncdir;
  if (implemented[op_readdir]) ops.readdir = fuse_native_readdir;
  if (implemented[op_readlink]) ops.readlink = fuse_native_readlink;
  if (implemented[op_chown]) ops.chown = fuse_native_chown;
  if (implemented[op_chmod]) ops.chmod = fuse_native_chmod;
  if (implemented[op_mknod]) ops.mknod = fuse_native_mknod;
  if (implemented[op_setxattr]) ops.setxattr = fuse_native_setxattr;
  if (implemented[op_getxattr]) ops.getxattr = fuse_native_getxattr;
  if (implemented[op_listxattr]) ops.listxattr = fuse_native_listxattr;
  if (implemented[op_removexattr]) ops.removexattr = fuse_native_removexattr;
  if (implemented[op_statfs]) ops.statfs = fuse_native_statfs;
  if (implemented[op_open]) ops.open = fuse_native_open;
  if (implemented[op_opendir]) ops.opendir = fuse_native_opendir;
  if (implemented[op_read]) ops.read = fuse_native_read;
  if (implemented[op_write]) ops.write = fuse_native_write;
  if (implemented[op_release]) ops.release = fuse_native_release;
  if (implemented[op_releasedir]) ops.releasedir = fuse_native_releasedir;
  if (implemented[op_create]) ops.create = fuse_native_create;
  if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;
  if (implemented[op_unlink]) ops.unlink = fuse_native_unlink;
  if (implemented[op_rename]) ops.rename = fuse_native_rename;
  if (implemented[op_link]) ops.link = fuse_native_link;
  if (implemented[op_symlink]) ops.symlink = fuse_native_symlink;
  if (implemented[op_mkdir]) ops.mkdir = fuse_native_mkdir;
  if (implemented[op_rmdir]) ops.rmdir = fuse_native_rmdir;
  if (implemented[op_init]) ops.init = fuse_native_init;
  // With lock/flock set, libfuse asks the kernel for FUSE_CAP_POSIX_LOCKS/FUSE_CAP_FLOCK_LOCKS
  // (fuse_fs_init), so fcntl(2)/flock(2) locks come here instead of staying in the kernel.
  if (implemented[op_lock]) ops.lock = fuse_native_lock;
  if (implemented[op_flock]) ops.flock = fuse_native_flock;

  int _argc = (strcmp(mntopts, "-o") <= 0) ? 1 : 2;
  char *_argv[] = {
    (char *) "fuse_bindings_dummy",
    (char *) mntopts
  };

  struct fuse_args args = FUSE_ARGS_INIT(_argc, _argv);
  struct fuse_chan *ch = fuse_mount(mnt, &args);

  if (ch == NULL) {
    napi_throw_error(env, "fuse failed", "fuse failed");
    return NULL;
  }

  struct fuse *fuse = fuse_new(ch, &args, &ops, sizeof(struct fuse_operations), ft);

  uv_mutex_init(&(ft->mut));
  uv_sem_init(&(ft->sem), 0);

  strncpy(ft->mnt, mnt, 1024);
  strncpy(ft->mntopts, mntopts, 1024);
  ft->fuse = fuse;
  ft->ch = ch;
  ft->mounted++;
  if (ft->attr_cache == NULL) ft->attr_cache = attr_cache_new();

  int err = uv_async_init(uv_default_loop(), &(ft->async), (uv_async_cb) fuse_native_async_init);

  if (fuse == NULL || err < 0) {
    napi_throw_error(env, "fuse failed", "fuse failed");
    return NULL;
  }

  pthread_attr_init(&(ft->attr));
  pthread_create(&(ft->thread), &(ft->attr), start_fuse_thread, ft);

  return NULL;
}


// redisfs patch: the JS side of the attribute cache (see attr_cache above).
// (thread, path, statArray, ttlMs, flags): publish; (thread, path): forget; (thread): forget all.
NAPI_METHOD(fuse_native_attr_cache_set) {
  NAPI_ARGV(5)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  size_t path_len;
  napi_get_value_string_latin1(env, argv[1], NULL, 0, &path_len);
  NAPI_ARGV_BUFFER_CAST(uint32_t *, ints, 2);
  double ttl_ms;
  napi_get_value_double(env, argv[3], &ttl_ms);
  uint32_t flags = 0;
  napi_get_value_uint32(env, argv[4], &flags);
  attr_cache *c = ft->attr_cache;
  if (c == NULL || ttl_ms <= 0) return NULL;
  attr_entry *e = malloc(sizeof(attr_entry) + path_len + 1);
  if (e == NULL) return NULL;
  napi_get_value_string_latin1(env, argv[1], e->path, path_len + 1, NULL);
  memset(&e->st, 0, sizeof(struct stat));
  populate_stat(ints, &e->st);
  e->flags = flags;
  e->hash = path_hash(e->path);
  e->expires = monotonic_ns() + (uint64_t) (ttl_ms * 1e6);
  pthread_mutex_lock(&c->lock);
  attr_cache_remove_locked(c, e->path, e->hash);
  if (c->count >= ATTR_CACHE_MAX) attr_cache_clear_locked(c);
  attr_entry **slot = &c->buckets[e->hash & (ATTR_CACHE_BUCKETS - 1)];
  e->next = *slot;
  *slot = e;
  c->count++;
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

NAPI_METHOD(fuse_native_attr_cache_delete) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  attr_cache *c = ft->attr_cache;
  if (c == NULL || c->count == 0) return NULL;
  size_t len;
  napi_get_value_string_latin1(env, argv[1], NULL, 0, &len);
  char *path = malloc(len + 1);
  if (path == NULL) {
    // Cannot tell which entry to drop: drop them all rather than serve a stale one.
    pthread_mutex_lock(&c->lock);
    attr_cache_clear_locked(c);
    pthread_mutex_unlock(&c->lock);
    return NULL;
  }
  napi_get_value_string_latin1(env, argv[1], path, len + 1, NULL);
  pthread_mutex_lock(&c->lock);
  attr_cache_remove_locked(c, path, path_hash(path));
  pthread_mutex_unlock(&c->lock);
  free(path);
  return NULL;
}

// (thread, path): the published stat of path is outdated, its flags are not.
NAPI_METHOD(fuse_native_attr_cache_stale) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  attr_cache *c = ft->attr_cache;
  if (c == NULL || c->count == 0) return NULL;
  size_t len;
  napi_get_value_string_latin1(env, argv[1], NULL, 0, &len);
  char *path = malloc(len + 1);
  if (path == NULL) {
    pthread_mutex_lock(&c->lock);
    attr_cache_clear_locked(c);
    pthread_mutex_unlock(&c->lock);
    return NULL;
  }
  napi_get_value_string_latin1(env, argv[1], path, len + 1, NULL);
  uint64_t h = path_hash(path);
  pthread_mutex_lock(&c->lock);
  for (attr_entry *e = c->buckets[h & (ATTR_CACHE_BUCKETS - 1)]; e != NULL; e = e->next) {
    if (e->hash == h && strcmp(e->path, path) == 0) {
      e->flags |= ATTR_STALE;
      break;
    }
  }
  pthread_mutex_unlock(&c->lock);
  free(path);
  return NULL;
}

NAPI_METHOD(fuse_native_attr_cache_clear) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  attr_cache *c = ft->attr_cache;
  if (c == NULL) return NULL;
  pthread_mutex_lock(&c->lock);
  attr_cache_clear_locked(c);
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

NAPI_METHOD(fuse_native_set_handle_clean) {
  NAPI_ARGV(3)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_UINT32(fh, 1);
  bool clean = false;
  napi_get_value_bool(env, argv[2], &clean);
  attr_cache *c = ft->attr_cache;
  if (c == NULL) return NULL;
  pthread_mutex_lock(&c->lock);
  uint32_t at = c->clean_count;
  for (uint32_t i = 0; i < c->clean_count; i++) {
    if (c->clean[i] == fh) {
      at = i;
      break;
    }
  }
  if (clean && at == c->clean_count && c->clean_count < CLEAN_FH_MAX) {
    c->clean[c->clean_count++] = fh;
  } else if (!clean && at < c->clean_count) {
    c->clean[at] = c->clean[--c->clean_count];
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

// redisfs patch: (thread, held): while !held, lock(F_SETLK, F_UNLCK) answers 0 in C.
NAPI_METHOD(fuse_native_set_posix_locks_held) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  bool held = false;
  napi_get_value_bool(env, argv[1], &held);
  __atomic_store_n(&ft->posix_locks_held, held ? 1 : 0, __ATOMIC_SEQ_CST);
  return NULL;
}

// redisfs patch: (threadLocals, seq) -> whether the kernel interrupted the lock/flock request
// that got token seq (FUSE_INTERRUPT); false once it was answered (l->req cleared, or reused
// by a later request with another seq).
NAPI_METHOD(fuse_native_interrupted) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_locals_t *, l, 0);
  uint32_t seq = 0;
  napi_get_value_uint32(env, argv[1], &seq);
  int interrupted = 0;
  pthread_mutex_lock(&req_lock);
  if (l->req != NULL && l->req_seq == seq) interrupted = fuse_req_interrupted(l->req);
  pthread_mutex_unlock(&req_lock);
  napi_value result;
  napi_get_boolean(env, interrupted != 0, &result);
  return result;
}

NAPI_METHOD(fuse_native_unmount) {
  NAPI_ARGV(2)
  NAPI_ARGV_UTF8(mnt, 1024, 0);
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 1);

  if (ft != NULL && ft->mounted) {
    // TODO: Investigate why the FUSE thread is not always killed after fusermount.
    // pthread_join(ft->thread, NULL);
  }

  // TODO: fix the async holding the loop
  uv_unref((uv_handle_t *) &(ft->async));
  ft->mounted--;

  return NULL;
}

NAPI_INIT() {
  const napi_node_version* version;
  assert(napi_get_node_version(env, &version) == napi_ok);

  if (version->major > 12 || (version->major == 12 && version->minor >= 16)) {
    IS_ARRAY_BUFFER_DETACH_SUPPORTED = 1;
  }

  pthread_key_create(&(thread_locals_key), NULL); // TODO: add destructor

  NAPI_EXPORT_SIZEOF(fuse_thread_t)

  NAPI_EXPORT_FUNCTION(fuse_native_mount)
  NAPI_EXPORT_FUNCTION(fuse_native_unmount)
  NAPI_EXPORT_FUNCTION(fuse_native_attr_cache_set)
  NAPI_EXPORT_FUNCTION(fuse_native_attr_cache_delete)
  NAPI_EXPORT_FUNCTION(fuse_native_attr_cache_clear)
  NAPI_EXPORT_FUNCTION(fuse_native_attr_cache_stale)
  NAPI_EXPORT_FUNCTION(fuse_native_set_handle_clean)
  NAPI_EXPORT_FUNCTION(fuse_native_set_posix_locks_held)
  NAPI_EXPORT_FUNCTION(fuse_native_interrupted)

  NAPI_EXPORT_FUNCTION(fuse_native_signal_getattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_init)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_access)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_statfs)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_fgetattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_getattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_flush)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_fsync)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_fsyncdir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_readdir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_truncate)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_ftruncate)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_utimens)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_readlink)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_chown)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_chmod)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_mknod)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_setxattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_getxattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_listxattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_removexattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_open)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_opendir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_read)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_write)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_release)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_releasedir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_create)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_unlink)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_rename)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_link)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_symlink)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_mkdir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_rmdir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_lock)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_flock)

  NAPI_EXPORT_UINT32(op_getattr)
  NAPI_EXPORT_UINT32(op_init)
  NAPI_EXPORT_UINT32(op_error)
  NAPI_EXPORT_UINT32(op_access)
  NAPI_EXPORT_UINT32(op_statfs)
  NAPI_EXPORT_UINT32(op_fgetattr)
  NAPI_EXPORT_UINT32(op_getattr)
  NAPI_EXPORT_UINT32(op_flush)
  NAPI_EXPORT_UINT32(op_fsync)
  NAPI_EXPORT_UINT32(op_fsyncdir)
  NAPI_EXPORT_UINT32(op_readdir)
  NAPI_EXPORT_UINT32(op_truncate)
  NAPI_EXPORT_UINT32(op_ftruncate)
  NAPI_EXPORT_UINT32(op_utimens)
  NAPI_EXPORT_UINT32(op_readlink)
  NAPI_EXPORT_UINT32(op_chown)
  NAPI_EXPORT_UINT32(op_chmod)
  NAPI_EXPORT_UINT32(op_mknod)
  NAPI_EXPORT_UINT32(op_setxattr)
  NAPI_EXPORT_UINT32(op_getxattr)
  NAPI_EXPORT_UINT32(op_listxattr)
  NAPI_EXPORT_UINT32(op_removexattr)
  NAPI_EXPORT_UINT32(op_open)
  NAPI_EXPORT_UINT32(op_opendir)
  NAPI_EXPORT_UINT32(op_read)
  NAPI_EXPORT_UINT32(op_write)
  NAPI_EXPORT_UINT32(op_release)
  NAPI_EXPORT_UINT32(op_releasedir)
  NAPI_EXPORT_UINT32(op_create)
  NAPI_EXPORT_UINT32(op_unlink)
  NAPI_EXPORT_UINT32(op_rename)
  NAPI_EXPORT_UINT32(op_link)
  NAPI_EXPORT_UINT32(op_symlink)
  NAPI_EXPORT_UINT32(op_mkdir)
  NAPI_EXPORT_UINT32(op_rmdir)
  NAPI_EXPORT_UINT32(op_lock)
  NAPI_EXPORT_UINT32(op_flock)
  NAPI_EXPORT_UINT32(OP_COUNT)
}
