/*
 * consumer.c — rn_consumer's public API: partitions assigned by hand, seeks,
 * positions, the poll loop and close. The work is done by its parts
 * (consumer_int.h): fetcher.c fetches, decode.c turns fetched bytes into
 * messages, group.c follows a consumer group.
 *
 * A poll: release what the last poll's messages pointed into, run the
 * group's share (heartbeats, reconciling, commits), send Fetches for
 * partitions that want data, decode up to max.poll.records; with nothing to
 * return, wait for I/O until the deadline or the next timer (a heartbeat, a
 * retry), never sleeping past either. Errors noted by callbacks are returned
 * by the next poll, the first one only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/consumer_int.h"

/* ---- Errors -------------------------------------------------------------------------- */

void rn__consumer_set_pending(rn_consumer *c, int err, const char *fmt, ...)
{
    if (c->pending_err)
        return; /* the first error is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->pending_msg, sizeof(c->pending_msg), fmt, ap);
    va_end(ap);
    c->pending_err = err;
}

static int take_pending(rn_consumer *c)
{
    int err = c->pending_err;
    c->pending_err = 0;
    return rn__fail(&c->cl, err, "%s", c->pending_msg);
}

/* A transport failure: retried quietly until it has lasted socket.timeout.ms. */
void rn__consumer_transport_failed(rn_consumer *c, int err, const char *msg)
{
    int64_t now = rn__now_ms();
    if (!c->fail_since)
        c->fail_since = now;
    if (now - c->fail_since >= c->cl.conf->socket_timeout_ms) {
        rn__consumer_set_pending(c, err, "%s", msg);
        c->fail_since = 0;
    }
}

/* ---- Partitions -------------------------------------------------------------------------- */

cpart *rn__consumer_find_part(rn_consumer *c, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i]->partition == partition && strcmp(c->parts[i]->topic, topic) == 0)
            return c->parts[i];
    return NULL;
}

cpart *rn__consumer_new_part(rn_consumer *c, const char *topic, int32_t partition)
{
    cpart **v = realloc(c->parts, (c->n_parts + 1) * sizeof(*v));
    if (!v)
        return NULL;
    c->parts = v;
    cpart *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->position = p->fetch_pos = -1;
    p->hw = p->log_start = p->leo = -1;
    p->committed = -1;
    c->parts[c->n_parts++] = p;
    return p;
}

void rn__consumer_free_part(rn_consumer *c, cpart *p)
{
    /* Nothing points into the partition's buffers any more (invariant 5). */
    if (p->it_live && p->it.owned)
        c->n_it_owned--;
    rn_batch_iter_fini(&p->it);
    for (chunk *ch = p->head, *next; ch; ch = next) {
        next = ch->next;
        rn__consumer_chunk_free(ch);
    }
    free(p->topic);
    free(p);
}

/* Assign partitions [first, first + n) of topic from offset. */
/* ---- Public API ----------------------------------------------------------------------------- */

int rn_consumer_new(rn_consumer **out, const rn_conf *conf)
{
    *out = NULL;
    rn_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int rc = rn__client_init(&c->cl, conf);
    if (rc < 0) {
        free(c);
        return rc;
    }
    rn__consumer_group_init(c);
    *out = c;
    return 0;
}

const char *rn_consumer_errmsg(const rn_consumer *c)
{
    return c->cl.errmsg;
}

static int assign_range(rn_consumer *c, const char *topic, int32_t first, int32_t n, int64_t offset)
{
    rn__client *cl = &c->cl;
    if (offset < RN_START_BEGINNING)
        return rn__fail(cl, -EINVAL, "assign %s: bad start offset %" PRId64, topic, offset);
    for (int32_t i = first; i < first + n; i++)
        if (rn__consumer_find_part(c, topic, i))
            return rn__fail(cl, -EEXIST, "%s-%d is already assigned", topic, i);
    size_t base = c->n_parts;
    for (int32_t i = first; i < first + n; i++) {
        cpart *p = rn__consumer_new_part(c, topic, i);
        if (!p)
            goto nomem;
        if (offset >= 0)
            p->position = p->fetch_pos = offset;
    }
    if (offset >= 0 || n == 0)
        return 0;
    int64_t *ts = calloc((size_t)n, sizeof(*ts));
    if (!ts)
        goto nomem;
    for (int32_t i = 0; i < n; i++)
        ts[i] = offset == RN_START_BEGINNING ? RN_OFFSET_EARLIEST : RN_OFFSET_LATEST;
    int rc = rn__consumer_resolve(c, c->parts + base, ts, (size_t)n);
    free(ts);
    if (rc < 0) {
        while (c->n_parts > base)
            rn__consumer_free_part(c, c->parts[--c->n_parts]);
        return rc;
    }
    return 0;
nomem:
    while (c->n_parts > base)
        rn__consumer_free_part(c, c->parts[--c->n_parts]);
    return rn__fail(cl, -ENOMEM, "out of memory");
}

int rn_consumer_assign(rn_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    rn__client *cl = &c->cl;
    if (!topic)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "assign: no topic");
    if (rn__consumer_subscribed(c))
        return rn__fail(cl, -EINVAL, "assign %s-%d: the group assigns partitions (subscribed)",
                        topic, partition);
    if (rn__consumer_find_part(c, topic, partition))
        return rn__fail(cl, -EEXIST, "%s-%d is already assigned", topic, partition);
    rn__md_topic *t;
    int rc = rn__md_wait_topic(cl, topic, cl->conf->socket_timeout_ms, &t);
    if (rc < 0)
        return rc;
    if (partition < 0 || partition >= t->n_parts)
        return rn__fail(cl, -RN_E_UNKNOWN_TOPIC, "topic %s has %d partition%s, no partition %d",
                        topic, t->n_parts, t->n_parts == 1 ? "" : "s", partition);
    return assign_range(c, topic, partition, 1, offset);
}

int rn_consumer_assign_topic(rn_consumer *c, const char *topic, int64_t offset)
{
    rn__client *cl = &c->cl;
    if (!topic)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "assign: no topic");
    if (rn__consumer_subscribed(c))
        return rn__fail(cl, -EINVAL, "assign %s: the group assigns partitions (subscribed)", topic);
    rn__md_topic *t;
    int rc = rn__md_wait_topic(cl, topic, cl->conf->socket_timeout_ms, &t);
    if (rc < 0)
        return rc;
    return assign_range(c, topic, 0, t->n_parts, offset);
}

int rn_consumer_seek(rn_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    cpart *p = rn__consumer_find_part(c, topic, partition);
    if (!p)
        return rn__fail(&c->cl, -RN_E_UNKNOWN_TOPIC, "seek: %s-%d is not assigned", topic,
                        partition);
    if (offset < RN_START_BEGINNING)
        return rn__fail(&c->cl, -EINVAL, "seek %s-%d: bad offset %" PRId64, topic, partition,
                        offset);
    if (offset >= 0) {
        rn__consumer_set_position(c, p, offset);
        return 0;
    }
    int64_t ts = offset == RN_START_BEGINNING ? RN_OFFSET_EARLIEST : RN_OFFSET_LATEST;
    return rn__consumer_resolve(c, &p, &ts, 1);
}

int rn_consumer_seek_time(rn_consumer *c, const char *topic, int32_t partition, int64_t ts_ms)
{
    cpart *p = rn__consumer_find_part(c, topic, partition);
    if (!p)
        return rn__fail(&c->cl, -RN_E_UNKNOWN_TOPIC, "seek: %s-%d is not assigned", topic,
                        partition);
    if (ts_ms < 0)
        return rn__fail(&c->cl, -EINVAL, "seek %s-%d: bad time %" PRId64, topic, partition, ts_ms);
    return rn__consumer_resolve(c, &p, &ts_ms, 1);
}

int64_t rn_consumer_position(const rn_consumer *c, const char *topic, int32_t partition)
{
    cpart *p = rn__consumer_find_part((rn_consumer *)c, topic, partition);
    return p ? p->position : -1;
}

int64_t rn_consumer_high_watermark(const rn_consumer *c, const char *topic, int32_t partition)
{
    cpart *p = rn__consumer_find_part((rn_consumer *)c, topic, partition);
    return p ? p->hw : -1;
}

int rn_consumer_at_end(const rn_consumer *c)
{
    if (c->n_parts == 0)
        return 0;
    for (size_t i = 0; i < c->n_parts; i++) {
        const cpart *p = c->parts[i];
        if (p->hw < 0 || p->position < p->hw)
            return 0;
    }
    return 1;
}

int rn_consumer_poll(rn_consumer *c, int timeout_ms, const rn_message **msgs)
{
    *msgs = NULL;
    rn__consumer_release_previous(c);
    if (c->pending_err)
        return take_pending(c);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : rn__now_ms() + timeout_ms;
    for (bool polled = false;;) {
        rn__consumer_group_pump(c);
        rn__consumer_pump(c);
        int n = rn__consumer_decode(c);
        if (n != 0) {
            rn__consumer_pump(c); /* prefetch: what was consumed frees room for the next answer */
            /* Move bytes without waiting: requests queued by this poll
             * (prefetch, heartbeat, auto-commit) go out now and answers
             * that came are read, even while the buffers alone keep the
             * application busy. The callbacks touch no returned message. */
            int rc = rn__client_poll(&c->cl, 0);
            if (rc < 0)
                rn__consumer_set_pending(c, rc, "poll: %s", rn_strerror(rc));
            *msgs = n > 0 ? c->msgs : NULL;
            return n;
        }
        if (c->pending_err)
            return take_pending(c);
        int64_t now = rn__now_ms();
        if (polled && now >= deadline)
            return 0;
        int64_t wake = min64(deadline, rn__consumer_next_timer(c));
        int64_t wait = wake <= now ? 0 : wake - now;
        if (wait > INT32_MAX)
            wait = INT32_MAX;
        int rc = rn__client_poll(&c->cl, (int)wait);
        if (rc < 0)
            return rn__fail(&c->cl, rc, "poll: %s", rn_strerror(rc));
        polled = true;
    }
}

void rn_consumer_close(rn_consumer *c)
{
    if (!c)
        return;
    if (rn__consumer_subscribed(c))
        rn__consumer_group_leave(c); /* final commit and leave: partitions move at once */
    c->closing = true;       /* from here chunks free their frames instead of recycling them */
    rn__client_fini(&c->cl); /* fails fetches in flight: their callbacks touch parts */
    rn__consumer_release_previous(c); /* frees the dead list: nothing is fetching any more */
    rn_member_fini(&c->grp.m);
    for (size_t i = 0; i < c->n_parts; i++)
        rn__consumer_free_part(c, c->parts[i]);
    free(c->parts);
    for (size_t i = 0; i < c->n_spare; i++)
        free(c->spare[i]);
    free(c->msgs);
    free(c->to_free);
    free(c->asg_topics);
    free(c->asg_parts);
    free(c);
}

size_t rn_consumer_assignment(const rn_consumer *cc, const char *const **topics,
                              const int32_t **partitions)
{
    rn_consumer *c = (rn_consumer *)cc; /* the arrays are a cache, not state */
    *topics = NULL;
    *partitions = NULL;
    if (c->n_parts > c->asg_cap) {
        const char **t = realloc(c->asg_topics, c->n_parts * sizeof(*t));
        if (t)
            c->asg_topics = t;
        int32_t *p = realloc(c->asg_parts, c->n_parts * sizeof(*p));
        if (p)
            c->asg_parts = p;
        if (!t || !p)
            return 0;
        c->asg_cap = c->n_parts;
    }
    for (size_t i = 0; i < c->n_parts; i++) {
        c->asg_topics[i] = c->parts[i]->topic;
        c->asg_parts[i] = c->parts[i]->partition;
    }
    *topics = c->asg_topics;
    *partitions = c->asg_parts;
    return c->n_parts;
}
