/*
 * api/answers.c — the table a partitioned answer is built in, once for the
 * handlers that answer partition by partition on this reactor (list
 * offsets, offsets for leader epoch): each wrote the same two callocs, the
 * same out-of-memory answer and the same init loop.
 *
 * One block: n pointers, then the n messages they point to (a pointer's
 * size keeps the messages aligned as calloc would), so one free() frees
 * both and a failure has one answer.
 */
#include <errno.h>
#include <stdlib.h>

#include "broker/api/api.h"
#include "broker/net/conn.h"

void *rn_api_answers(rn_request *req, const ProtobufCMessageDescriptor *d, size_t n)
{
    size_t m = n ? n : 1;
    void **table = calloc(m, sizeof(void *) + d->sizeof_message);
    if (!table) {
        rn_request_fail(req, -ENOMEM, "out of memory");
        return NULL;
    }
    char *msgs = (char *)(table + m);
    for (size_t i = 0; i < n; i++) {
        table[i] = msgs + i * d->sizeof_message;
        protobuf_c_message_init(d, table[i]);
    }
    return table;
}
