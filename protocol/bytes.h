/*
 * bytes.h — fixed-width integers in and out of byte buffers, in either order.
 *
 * Record batches, frames and the `__offsets` records are big-endian (Kafka's
 * order); runnel's own files (checkpoints, snapshots, indexes) are
 * little-endian. These go through memcpy, so the pointer needs no alignment,
 * and compile to a single load or store plus a byte swap.
 */
#ifndef RN_BYTES_H
#define RN_BYTES_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

/* rn_get_<order><bits>(p) reads and rn_put_<order><bits>(p, v) writes one
 * integer of that width at p: one macro makes each pair, so the ten
 * functions cannot drift apart. Defined: rn_get_be16/32/64, rn_put_be16/32/64,
 * rn_get_le32/64, rn_put_le32/64. */
#define RN_BYTES_DEFINE(order, bits)                                                               \
    static inline uint##bits##_t rn_get_##order##bits(const uint8_t *p)                            \
    {                                                                                              \
        uint##bits##_t v;                                                                          \
        memcpy(&v, p, sizeof(v));                                                                  \
        return order##bits##toh(v);                                                                \
    }                                                                                              \
    static inline void rn_put_##order##bits(uint8_t *p, uint##bits##_t v)                          \
    {                                                                                              \
        v = hto##order##bits(v);                                                                   \
        memcpy(p, &v, sizeof(v));                                                                  \
    }

RN_BYTES_DEFINE(be, 16)
RN_BYTES_DEFINE(be, 32)
RN_BYTES_DEFINE(be, 64)
RN_BYTES_DEFINE(le, 32)
RN_BYTES_DEFINE(le, 64)

#undef RN_BYTES_DEFINE

#endif
