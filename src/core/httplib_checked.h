// <httplib.h>, for every file of the project that uses cpp-httplib: Debian's library is built
// with OpenSSL, zlib and Brotli support, and those macros change the layout of its classes
// (httplib::Client, Request), so a file compiled without them reserves smaller objects than
// the library's code fills. CMakeLists.txt passes the library's pkg-config Cflags to every
// target that links PkgConfig::HTTPLIB; this refuses to compile anywhere they are missing
// (docs/decisions.md, "cpp-httplib's compile flags").
#pragma once

#if !defined(CPPHTTPLIB_OPENSSL_SUPPORT) || !defined(CPPHTTPLIB_ZLIB_SUPPORT) || !defined(CPPHTTPLIB_BROTLI_SUPPORT)
#error "cpp-httplib's feature macros are missing: link the target to PkgConfig::HTTPLIB (its pkg-config Cflags)"
#endif
#include <httplib.h>
