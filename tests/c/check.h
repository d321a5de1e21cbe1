/* check.h: the smallest test harness: CHECK counts, the summary line is the
 * one CI reads ("N passed, M failed"), and the exit status follows it. */
#ifndef DDM_CHECK_H
#define DDM_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mprapi.h"

static int checks_passed, checks_failed;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (cond) {                                                        \
            checks_passed++;                                               \
        } else {                                                           \
            checks_failed++;                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

#define CHECK_EQ(got, want)                                                \
    do {                                                                   \
        unsigned long long got_ = (unsigned long long)(got);               \
        unsigned long long want_ = (unsigned long long)(want);             \
        if (got_ == want_) {                                               \
            checks_passed++;                                               \
        } else {                                                           \
            checks_failed++;                                               \
            fprintf(stderr, "%s:%d: %s is %llu, expected %s (%llu)\n",     \
                    __FILE__, __LINE__, #got, got_, #want, want_);         \
        }                                                                  \
    } while (0)

static inline int check_summary(const char *program) {
    printf("%s: %d passed, %d failed\n", program, checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}

/* A UTF-16 string as ASCII (non-ASCII becomes '?'), for comparisons. */
static inline void narrow(const WCHAR *wide, char *out, size_t size) {
    size_t i = 0;
    for (; wide[i] != 0 && i + 1 < size; i++)
        out[i] = wide[i] < 128 ? (char)wide[i] : '?';
    out[i] = 0;
}

/* Runs "ip -n $DDM_TEST_NETNS ARGS" and returns its exit status. */
static inline int ip(const char *args) {
    char command[512];
    const char *netns = getenv("DDM_TEST_NETNS");
    if (netns == NULL) {
        fprintf(stderr, "DDM_TEST_NETNS is not set\n");
        exit(2);
    }
    snprintf(command, sizeof command, "ip -n %s %s", netns, args);
    return system(command);
}

#endif
