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

static inline uint16_t rn_get_be16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return be16toh(v);
}

static inline uint32_t rn_get_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}

static inline uint64_t rn_get_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static inline void rn_put_be16(uint8_t *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, 2);
}

static inline void rn_put_be32(uint8_t *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, 4);
}

static inline void rn_put_be64(uint8_t *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}

static inline uint32_t rn_get_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static inline uint64_t rn_get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static inline void rn_put_le32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static inline void rn_put_le64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

#endif
