/*
 * Minimal unit-test harness for Arc's C tests. A test file defines
 * `static void test_x(void)` functions and lists them in main() via RUN().
 * Failures are reported with file:line and the binary exits 1; pytest
 * (tests/test_unit.py) runs every unit binary as one test case each.
 */
#ifndef ARC_TEST_H
#define ARC_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures, t_checks, t_tests, t_failed_tests;

#define CHECK(cond) do { t_checks++; if (!(cond)) { t_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

#define CHECK_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); t_checks++; \
    if (_a != _b) { t_failures++; fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
    __FILE__, __LINE__, #a, _a, #b, _b); } } while (0)

#define CHECK_STR(a, b) do { const char *_a = (a), *_b = (b); t_checks++; \
    if (!_a || !_b || strcmp(_a, _b) != 0) { t_failures++; fprintf(stderr, \
    "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, _a ? _a : "(null)", \
    _b ? _b : "(null)"); } } while (0)

/* Compares a (pointer,length) view with a C string. */
#define CHECK_VIEW(p, n, s) do { const char *_s = (s); size_t _n = (n); t_checks++; \
    if (_n != strlen(_s) || memcmp((p), _s, _n) != 0) { t_failures++; fprintf(stderr, \
    "%s:%d: %s == \"%.*s\", expected \"%s\"\n", __FILE__, __LINE__, #p, (int)_n, \
    (const char *)(p), _s); } } while (0)

#define RUN(fn) do { int _before = t_failures; t_tests++; fn(); \
    if (t_failures != _before) { t_failed_tests++; fprintf(stderr, "FAIL %s\n", #fn); } \
    else printf("ok   %s\n", #fn); } while (0)

#define TEST_REPORT() (printf("%d passed, %d failed (%d checks)\n", \
    t_tests - t_failed_tests, t_failed_tests, t_checks), t_failed_tests ? 1 : 0)

#endif
