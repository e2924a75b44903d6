/*
 * container_of.h — RN_CONTAINER_OF: from a pointer to a member back to the
 * struct that embeds it.
 *
 * runnel embeds its callback handles (rn_io_op, rn_gw_call, …) in their
 * owners, and each callback finds its owner with this instead of an open-coded
 * `(T *)((char *)p - offsetof(T, m))`. It lives in protocol/, the bottom layer,
 * so storage, broker, clients and tools can all include it (DESIGN §2).
 */
#ifndef RN_CONTAINER_OF_H
#define RN_CONTAINER_OF_H

#include <stddef.h>

/* The `type` whose `member` ptr points at. The conditional never evaluates its
 * second operand; it is there so a ptr whose type does not match the member's
 * draws a compiler warning ("pointer type mismatch") instead of a silent cast. */
#define RN_CONTAINER_OF(ptr, type, member)                                                         \
    ((type *)(void *)((char *)(1 ? (ptr) : &((type *)0)->member) - offsetof(type, member)))

#endif
