/*
 * tail.h — a live tail of one partition for the streaming gateways (SSE,
 * WebSocket); internal to broker/gateway/.
 *
 * A tail resolves where to start (ListOffsets for beginning / end / a time),
 * then runs a loop of long-poll Fetch requests — the same requests a native
 * consumer sends — through its own in-process client, renders each answer's
 * records as JSON and hands them to its owner. The owner paces it: the next
 * fetch goes out only while has_room() says the owner's queue has room, and
 * rn_tail_resume restarts it when room comes back.
 *
 * Callbacks never run inside rn_tail_new/rn_tail_resume/rn_tail_free; they
 * run from the reactor's loop. A callback may call rn_tail_free on its own
 * tail.
 */
#ifndef RN_GATEWAY_TAIL_H
#define RN_GATEWAY_TAIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/gateway/json.h"

typedef struct rn_tail rn_tail;

enum rn_tail_start { RN_TAIL_BEGINNING, RN_TAIL_END, RN_TAIL_OFFSET, RN_TAIL_TIME };

#define RN_TAIL_MAX_FILTER  256
#define RN_TAIL_FETCH_BYTES (256u << 10) /* per fetch answer */
#define RN_TAIL_WAIT_MS     5000         /* long-poll time of each fetch */
/* "Try again" answers (503: the leader moved, is out of reach, a timeout):
 * asked again after a pause, until this long in a row (tail.c). */
#define RN_TAIL_RETRY_PAUSE_MS 250
#define RN_TAIL_RETRY_MS       30000
#define RN_TAIL_RENDER_BYTES   (1u << 20)  /* rendered text per fetch answer */
#define RN_TAIL_SCAN_BYTES     (16u << 20) /* records looked at per answer (filters) */
/* Framing an owner adds per record, at most: SSE's "id: N\nevent: record\ndata: " and "\n\n". */
#define RN_TAIL_RECORD_OVERHEAD 64

typedef struct rn_tail_opts {
    const char *topic; /* copied */
    int32_t partition;
    enum rn_tail_start start;
    int64_t at;         /* the offset (RN_TAIL_OFFSET) or time in ms (RN_TAIL_TIME) */
    const char *filter; /* substring of key or value; NULL or "" for all; copied */
    enum rn_gw_format fmt;
    rn_json_cache *cache; /* shared renderings; borrowed, must outlive the tail; may be NULL */
} rn_tail_opts;

typedef struct rn_tail_cbs {
    /* The start offset is known (before any record). */
    void (*on_start)(void *arg, int64_t offset);
    /* One record of a fetch answer, in offset order (borrowed for the call).
     * Return 0; or <0 after freeing the tail (the rest is not delivered). */
    int (*on_record)(void *arg, const rn_json_rec *rec);
    /* The answer's records have all been handed over (n > 0 of them);
     * next: where the tail goes on. */
    void (*on_records_end)(void *arg, size_t n, int64_t next);
    /* The tail stopped for good (unknown topic, deleted, storage error, an
     * offset that is not there, the leader out of reach for RN_TAIL_RETRY_MS):
     * HTTP status, REST code and a message. */
    void (*on_error)(void *arg, int status, int code, const char *msg);
    /* May another fetch go out now? */
    bool (*has_room)(void *arg);
} rn_tail_cbs;

/* Start a tail on reactor r. peer names it in logs. Errors: -ENOMEM,
 * -EINVAL (filter longer than RN_TAIL_MAX_FILTER). */
int rn_tail_new(rn_tail **out, rn_reactor *r, const char *peer, const rn_tail_opts *o,
                const rn_tail_cbs *cbs, void *arg);

/* The owner has room again: fetch if idle. */
void rn_tail_resume(rn_tail *t);

/* Stop: no callback runs after this returns. NULL-safe. */
void rn_tail_free(rn_tail *t);

/* Parse a start position: "beginning" | "earliest" | "end" | "latest" | N |
 * "s@MS" (kcat's time form). Errors: -EINVAL. */
int rn_tail_parse_start(const char *s, enum rn_tail_start *start, int64_t *at);

#endif
