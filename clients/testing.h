/*
 * testing.h — counters librunnel exposes for its own tests; not installed.
 *
 * They let a test prove behaviour that the public API hides on purpose (that
 * many small records went out as few requests). The symbols exist in the
 * static library only: the shared library exports the public API alone
 * (clients/librunnel.map).
 */
#ifndef RN_CLIENT_TESTING_H
#define RN_CLIENT_TESTING_H

#include <stdint.h>

#include "clients/runnel.h"

/* Produce requests sent so far (each retry counts again). */
uint64_t rn__producer_requests(const rn_producer *p);
/* Record batches sent so far, over all those requests. */
uint64_t rn__producer_batches(const rn_producer *p);
/* The producer id the broker gave (idempotence), or -1 while it has none or
 * idempotence is off. */
int64_t rn__producer_id(const rn_producer *p);

#endif
