/*
 * coord/member_id.h — the member ids a coordinator gives out: a random
 * (version 4) UUID, after a prefix when one is wanted. Native groups
 * (coord/groups.c) give the bare UUID; classic groups (coord/classic_group.c)
 * give Kafka's form, client id, a dash and the UUID. One copy, so both read
 * the same randomness the same way.
 */
#ifndef RN_BROKER_COORD_MEMBER_ID_H
#define RN_BROKER_COORD_MEMBER_ID_H

#include <stddef.h>

/* A fresh member id in buf (len bytes, truncated as snprintf does):
 * "<prefix>-<uuid>" with prefix cut at 64 bytes, or "<uuid>" when prefix is
 * NULL. -errno when the system has no randomness to give, else 0. */
int rn_member_id_new(const char *prefix, char *buf, size_t len);

#endif
