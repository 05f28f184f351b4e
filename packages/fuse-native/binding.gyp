{
  "targets": [{
    "target_name": "fuse",
    "include_dirs": [
      "<!(node -e \"require('napi-macros')\")",
    ],
    # redisfs patch: build against the system libfuse 2 (Debian: libfuse-dev)
    # instead of fuse-shared-library's bundled headers and libfuse.so.
    "libraries": [
      "<!@(pkg-config --libs fuse)",
    ],
    "sources": [
      "fuse-native.c"
    ],
    'cflags': [
      '-g',
      '-O3',
      '-Wall',
      '<!@(pkg-config --cflags fuse)',
    ],
  }]
}
