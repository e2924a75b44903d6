/*
 * sorted.h — binary search in the broker's sorted arrays (topics by name and
 * id, groups, members, committed offsets), with the insert position libc's
 * bsearch() does not give; and the growth and insert those arrays share.
 */
#ifndef RN_BROKER_SORTED_H
#define RN_BROKER_SORTED_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
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

/* Room for one more element in the array whose pointer is at arrayp (a T **
 * for an array of T) holding n elements of size bytes, with capacity *cap:
 * when full it is reallocated to twice that (first when empty). -ENOMEM with
 * the array as it was, or 0. The pointer is read and written with memcpy,
 * so any T * works (object pointers share one representation on every
 * target runnel builds for). */
static inline int rn_array_reserve(void *arrayp, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : first;
    void *old, *v;
    memcpy(&old, arrayp, sizeof(old));
    if (!(v = realloc(old, c * size)))
        return -ENOMEM;
    memcpy(arrayp, &v, sizeof(v));
    *cap = c;
    return 0;
}

/* Put the element at elem into the array at base of n elements of size
 * bytes (with room for one more: rn_array_reserve) at index at, the ones
 * from there on moving up one. */
static inline void rn_array_insert(void *base, size_t n, size_t size, size_t at, const void *elem)
{
    char *b = base;
    memmove(b + (at + 1) * size, b + at * size, (n - at) * size);
    memcpy(b + at * size, elem, size);
}

#endif
