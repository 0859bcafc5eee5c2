// Clang thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html).
// The clang build (the fuzz targets in `make test`, or any build with CXX=clang++) compiles
// with -Wthread-safety -Werror, so a member read without its lock does not compile. With
// GCC the macros expand to nothing.
#pragma once

#if defined(__clang__)
#define NS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define NS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) NS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY NS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) NS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) NS_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) NS_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define REQUIRES(...) NS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) NS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) NS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) NS_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) NS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) NS_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS NS_THREAD_ANNOTATION(no_thread_safety_analysis)
