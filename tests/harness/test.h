/* A small unit-test harness: TEST(name) functions, ASSERT macros that print both values, one test per process. */
#ifndef RSPROF_TEST_H
#define RSPROF_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);

/* Exit status that ctest reports as "skipped" (SKIP_RETURN_CODE). */
#define TEST_SKIP_CODE 77

/* Declares a test; CMake finds each TEST(name) line and registers it with ctest as binary.name. */
#define TEST(name)                                                                   \
  static void test_##name(void);                                                     \
  __attribute__((constructor)) static void test_register_##name(void)                \
  {                                                                                  \
    test_register(#name, test_##name);                                               \
  }                                                                                  \
  static void test_##name(void)

#define TEST_FAIL(...)                                                   \
  do {                                                                   \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                      \
    fprintf(stderr, __VA_ARGS__);                                        \
    fprintf(stderr, "\n");                                               \
    exit(1);                                                             \
  } while (0)

#define TEST_SKIP(...)                                                   \
  do {                                                                   \
    fprintf(stderr, "skipped: ");                                        \
    fprintf(stderr, __VA_ARGS__);                                        \
    fprintf(stderr, "\n");                                               \
    exit(TEST_SKIP_CODE);                                                \
  } while (0)

#define ASSERT_TRUE(cond)                                                \
  do {                                                                   \
    if (!(cond))                                                         \
      TEST_FAIL("assertion failed: %s", #cond);                          \
  } while (0)

#define ASSERT_EQ(a, b)                                                                       \
  do {                                                                                        \
    long long a_ = (long long)(a), b_ = (long long)(b);                                       \
    if (a_ != b_)                                                                             \
      TEST_FAIL("%s == %s failed: %lld (0x%llx) != %lld (0x%llx)", #a, #b, a_,                \
                (unsigned long long)a_, b_, (unsigned long long)b_);                          \
  } while (0)

#define ASSERT_U64_EQ(a, b)                                                                   \
  do {                                                                                        \
    uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                          \
    if (a_ != b_)                                                                             \
      TEST_FAIL("%s == %s failed: 0x%" PRIx64 " != 0x%" PRIx64, #a, #b, a_, b_);              \
  } while (0)

#define ASSERT_STR_EQ(a, b)                                                                   \
  do {                                                                                        \
    const char *a_ = (a), *b_ = (b);                                                          \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                    \
      TEST_FAIL("%s == %s failed: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",              \
                b_ ? b_ : "(null)");                                                          \
  } while (0)

/* Compares n bytes; on failure prints the first differing offset and both bytes there. */
#define ASSERT_MEM_EQ(a, b, n)                                                                \
  do {                                                                                        \
    const unsigned char *a_ = (const void *)(a), *b_ = (const void *)(b);                     \
    size_t n_ = (n);                                                                          \
    for (size_t i_ = 0; i_ < n_; i_++)                                                        \
      if (a_[i_] != b_[i_])                                                                   \
        TEST_FAIL("%s and %s differ at byte %zu of %zu: 0x%02x != 0x%02x", #a, #b, i_, n_,    \
                  a_[i_], b_[i_]);                                                            \
  } while (0)

#endif
