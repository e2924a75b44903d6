/*
 * net/shard.h — requests handed to the reactors that own their partitions (net/shard.c):
 * Produce, Fetch and ListOffsets split by owner and the answers merged; every other API
 * runs on reactor 0.
 */
#ifndef RN_BROKER_NET_SHARD_H
#define RN_BROKER_NET_SHARD_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/broker.h"

/* Hand req over to the reactors owning what it touches. Returns true when it
 * did (the answer comes back by message), false to handle it here. */
bool rn_shard_route(rn_request *req);
/* A part of a split Fetch parked (again) with `ready` bytes found, fewer than
 * min_bytes: tell its home, which answers every part at once when the parts
 * together have min_bytes. On the owner's reactor; may answer req before it
 * returns, so the caller must not touch req afterwards. */
void rn_shard_fetch_parked(rn_request *req, size_t ready);

#endif
