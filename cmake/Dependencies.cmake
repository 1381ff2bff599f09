# External libraries, found with pkg-config. A missing one stops the
# configure step with the Debian package that provides it.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install -y pkg-config")
endif()

# bw_require_pkg(PREFIX MODULE DEBIAN_PACKAGE) defines the imported target
# PkgConfig::PREFIX or fails naming the package to install.
function(bw_require_pkg prefix module debpkg)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR
      "${module} not found: apt-get install -y ${debpkg}  (or run scripts/test, which installs it)")
  endif()
  message(STATUS "Found ${module} ${${prefix}_VERSION}")
  set(${prefix}_VERSION "${${prefix}_VERSION}" PARENT_SCOPE)
endfunction()

bw_require_pkg(URING liburing liburing-dev)
bw_require_pkg(PROTOBUFC libprotobuf-c libprotobuf-c-dev)
# OpenSSL 3: libssl for TLS listeners; libcrypto for password hashes
# (PBKDF2-HMAC-SHA512, SHA-512) and JWT verification (EVP and provider
# interfaces); Argon2id; jansson 2.14 for JWT JSON (json_object_getn()).
bw_require_pkg(SSL "libssl>=3.0" libssl-dev)
bw_require_pkg(CRYPTO "libcrypto>=3.0" libssl-dev)
bw_require_pkg(ARGON2 libargon2 libargon2-dev)
bw_require_pkg(JANSSON "jansson>=2.14" libjansson-dev)
# libpq for the PostgreSQL tenancy store (non-blocking API, LISTEN/NOTIFY).
bw_require_pkg(PQ libpq libpq-dev)
# hiredis 0.14 (Debian 12) for the Redis client: its async API, driven by a
# worker's io_uring (node/state/redis.c).
bw_require_pkg(HIREDIS hiredis libhiredis-dev)

find_program(PROTOC_C NAMES protoc-c)
if(NOT PROTOC_C)
  message(FATAL_ERROR "protoc-c not found: apt-get install -y protobuf-c-compiler")
endif()

if(BW_TESTS)
  bw_require_pkg(CMOCKA cmocka libcmocka-dev)
endif()
