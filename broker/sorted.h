/*
 * sorted.h — binary search in the broker's sorted arrays (topics by name and
 * id, groups, members, committed offsets), with the insert position libc's
 * bsearch() does not give.
 */
#ifndef RN_BROKER_SORTED_H
#define RN_BROKER_SORTED_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* cmp(key, elem) < 0, 0, > 0 as key sorts before, at, after elem. */
typedef int (*rn_sorted_cmp)(const void *key, const void *elem);

/* Defines `static int name(const void *key, const void *elem)`, the cmp of an
 * array of pointers to type sorted by their string member field (groups by
 * id, topics by name): key is the string. */
#define RN_SORTED_CMP_STR(name, type, field)                                                       \
    static int name(const void *key, const void *elem)                                             \
    {                                                                                              \
        return strcmp(key, (*(type *const *)elem)->field);                                         \
    }

/* In the array of n elements of size bytes at base, sorted by cmp: the index
 * of the element equal to key (*found = true), or where key would be inserted
 * to keep the order (*found = false). */
static inline size_t rn_sorted_find(const void *base, size_t n, size_t size, const void *key,
                                    rn_sorted_cmp cmp, bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp(key, (const char *)base + mid * size);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

#endif
