/*
 * kafka/apis_int.h — what the Kafka APIs of apis.c and metadata.c share: the
 * request's own memory (kctx, freed with the request) and the calls that
 * answer through the native handlers. Internal to broker/kafka/.
 *
 *   apis.c      ApiVersions, Produce, Fetch, ListOffsets, CreateTopics,
 *               DeleteTopics, and rn_kafka_dispatch, which routes every API
 *   metadata.c  Metadata and the topic auto-creation it may run
 *               (auto.create.topics.enable), the advertised address
 *
 * Every function here runs on reactor 0, the Kafka listener's, like the
 * requests it serves.
 */
#ifndef RN_BROKER_KAFKA_APIS_INT_H
#define RN_BROKER_KAFKA_APIS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/kafka/conn.h"

/* What one request keeps while its native call runs: the strings and arrays
 * the native header points at, and what the answer needs from the request. */
typedef struct kpart {
    int32_t partition;
    int16_t error;   /* set before the call: this partition was not sent */
    size_t first, n; /* native entries (Produce: one per batch) */
} kpart;

typedef struct ktopic {
    char *name;
    size_t first, n; /* kparts */
} ktopic;

typedef struct kctx {
    void **allocs;
    size_t n_allocs, cap_allocs;
    ktopic *topics;
    size_t n_topics;
    kpart *parts;
    size_t n_parts;
    int16_t acks;
    bool list_none; /* Metadata asked for no topic at all */
    /* Metadata: the topics named, and auto-creation (auto.create.topics.enable) */
    char **names;
    int32_t n_names;
    bool may_create;    /* the broker's setting and the request allow it */
    bool create_ran;    /* the create round ran: there is never a second */
    int16_t *auto_err;  /* per name: AUTO_NOT_TRIED, or its create's Kafka error */
    int32_t *create_of; /* the native CreateTopics' topics: indexes into names */
    size_t n_create;
} kctx;

#define AUTO_NOT_TRIED INT16_MIN

/* A new kctx for req, owned by req from then on (freed with it). NULL when
 * out of memory. */
kctx *rn__kafka_ctx_new(rn_kreq *req);

/* n zeroed bytes owned by x (freed with the request). NULL when out of
 * memory. */
void *rn__kafka_ctx_alloc(kctx *x, size_t n);

/* s as a NUL-terminated string owned by x. NULL when out of memory. */
char *rn__kafka_ctx_str(kctx *x, rn_kstr s);

/* The native answer's slices, for the answers that copy what they need. */
void rn__kafka_release(rn_slice *slices, unsigned n_slices);

/* Run h in-process; answer is called with the native answer, or at once
 * with the error when the call cannot start (rc < 0 is such an error
 * found before the call: it is not made). Returns 0. */
int rn__kafka_call_native(rn_kreq *req, int rc, Runnel__RequestHeader *h, const void *payload,
                          size_t len, rn_gw_answer_cb answer);

/* Metadata v0-v8 (metadata.c), called by rn_kafka_dispatch: 0, or the
 * request's parse error or -ENOMEM (the connection then closes). */
int rn__kafka_metadata(rn_kreq *req);

#endif
