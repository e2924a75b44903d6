/*
 * metadata.c — the client's picture of the cluster: brokers, topics, leaders.
 *
 * A handle learns where partitions live from Metadata answers and keeps them in
 * this cache. The cache is refreshed on demand, never on a timer: when a
 * handle first uses a topic (rn__md_wait_topic), and when an answer says the
 * picture is stale (NOT_LEADER, UNKNOWN_TOPIC, FENCED_LEADER_EPOCH, a dead
 * connection: rn__needs_metadata). Every refresh asks for all the topics the
 * handle has used (the wanted list), so one answer serves them all; with none
 * wanted it asks for every topic.
 *
 * At most one Metadata request is in flight; a refresh asked for meanwhile is
 * remembered (again) and sent when the first completes, so a burst of errors
 * costs two requests, not one per error. A failed refresh moves on to the next
 * bootstrap server and holds further refreshes back for reconnect.backoff.ms
 * (not_before), except inside rn__md_wait_topic which tries each bootstrap
 * server once at once.
 *
 * Entries are replaced by each answer: pointers to rn__md_topic stay valid
 * until the next refresh completes (answers only arrive inside
 * rn__client_poll, so a caller that does not poll may hold them).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/internal.h"

static void free_topic(rn__md_topic *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->parts);
    free(t);
}

static void free_brokers(rn__metadata *md)
{
    for (size_t i = 0; i < md->n_brokers; i++)
        free(md->brokers[i].host);
    free(md->brokers);
    md->brokers = NULL;
    md->n_brokers = 0;
}

void rn__md_fini(rn__metadata *md)
{
    free_brokers(md);
    for (size_t i = 0; i < md->n_topics; i++)
        free_topic(md->topics[i]);
    free(md->topics);
    for (size_t i = 0; i < md->n_wanted; i++)
        free(md->wanted[i]);
    free(md->wanted);
    memset(md, 0, sizeof(*md));
}

rn__md_topic *rn__md_find(rn__client *cl, const char *topic)
{
    for (size_t i = 0; i < cl->md.n_topics; i++)
        if (strcmp(cl->md.topics[i]->name, topic) == 0)
            return cl->md.topics[i];
    return NULL;
}

int rn__md_want(rn__client *cl, const char *topic)
{
    rn__metadata *md = &cl->md;
    for (size_t i = 0; i < md->n_wanted; i++)
        if (strcmp(md->wanted[i], topic) == 0)
            return 0;
    char **v = realloc(md->wanted, (md->n_wanted + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    md->wanted = v;
    if (!(v[md->n_wanted] = strdup(topic)))
        return -ENOMEM;
    md->n_wanted++;
    return 0;
}

/* Replace the cached entry of one topic with what the answer says. */
static int apply_topic(rn__metadata *md, const Runnel__TopicMetadata *tm)
{
    rn__md_topic *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->name = strdup(tm->name ? tm->name : "");
    int32_t n = 0;
    for (size_t i = 0; i < tm->n_partitions; i++)
        if (tm->partitions[i]->partition >= n)
            n = tm->partitions[i]->partition + 1;
    /* Partition ids are small and dense; a hostile id must not make us allocate much. */
    if (n > (int32_t)tm->n_partitions + 1024)
        n = (int32_t)tm->n_partitions;
    t->parts = calloc(n ? (size_t)n : 1, sizeof(*t->parts));
    if (!t->name || !t->parts) {
        free_topic(t);
        return -ENOMEM;
    }
    t->n_parts = n;
    t->err = tm->error_code ? -(int)tm->error_code : 0;
    t->max_message_bytes = tm->max_message_bytes;
    for (int32_t i = 0; i < n; i++) {
        t->parts[i].leader = -1;
        t->parts[i].leader_epoch = -1;
        t->parts[i].err = -RN_E_NOT_LEADER;
    }
    for (size_t i = 0; i < tm->n_partitions; i++) {
        const Runnel__PartitionMetadata *pm = tm->partitions[i];
        if (pm->partition < 0 || pm->partition >= n)
            continue;
        rn__md_part *p = &t->parts[pm->partition];
        p->leader = pm->leader;
        p->leader_epoch = pm->leader_epoch;
        p->err = pm->error_code ? -(int)pm->error_code : 0;
    }
    for (size_t i = 0; i < md->n_topics; i++) {
        if (strcmp(md->topics[i]->name, t->name) == 0) {
            free_topic(md->topics[i]);
            md->topics[i] = t;
            return 0;
        }
    }
    rn__md_topic **v = realloc(md->topics, (md->n_topics + 1) * sizeof(*v));
    if (!v) {
        free_topic(t);
        return -ENOMEM;
    }
    md->topics = v;
    md->topics[md->n_topics++] = t;
    return 0;
}

static int apply(rn__metadata *md, const Runnel__MetadataResponse *mr)
{
    rn__md_broker *b = calloc(mr->n_brokers ? mr->n_brokers : 1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    size_t nb = 0;
    for (size_t i = 0; i < mr->n_brokers; i++) {
        const Runnel__Broker *br = mr->brokers[i];
        if (!br->host || !*br->host || br->port == 0 || br->port > 65535)
            continue;
        b[nb].node_id = br->node_id;
        b[nb].port = (uint16_t)br->port;
        if (!(b[nb].host = strdup(br->host))) {
            for (size_t k = 0; k < nb; k++)
                free(b[k].host);
            free(b);
            return -ENOMEM;
        }
        nb++;
    }
    free_brokers(md);
    md->brokers = b;
    md->n_brokers = nb;
    md->controller_id = mr->controller_id;
    for (size_t i = 0; i < mr->n_topics; i++) {
        int rc = apply_topic(md, mr->topics[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void md_cb(void *arg, rn__conn *c, int err, rn_frame_response *resp)
{
    rn__client *cl = arg;
    rn__metadata *md = &cl->md;
    md->in_flight = false;
    md->generation++;
    md->refreshed_at = rn__now_ms();
    if (err) {
        md->last_err = err;
        snprintf(md->errmsg, sizeof(md->errmsg), "%s", rn__conn_errmsg(c));
        md->not_before = rn__now_ms() + cl->conf->reconnect_backoff_ms;
        cl->next_boot++;
    } else if (resp->hdr->error_code) {
        md->last_err = -(int)resp->hdr->error_code;
        const char *m = resp->hdr->error_message ? resp->hdr->error_message : "";
        snprintf(md->errmsg, sizeof(md->errmsg), "metadata from %s:%u: %s%s%s", c->host, c->port,
                 rn_strerror(md->last_err), *m ? ": " : "", m);
        md->not_before = rn__now_ms() + cl->conf->retry_backoff_ms;
    } else {
        int rc = apply(md, resp->hdr->metadata);
        md->last_err = rc;
        if (rc < 0)
            snprintf(md->errmsg, sizeof(md->errmsg), "metadata: out of memory");
        else
            md->good_generation = md->generation;
    }
    if (md->again && rn__now_ms() >= md->not_before) {
        md->again = false;
        rn__md_refresh(cl);
    }
}

int rn__md_refresh(rn__client *cl)
{
    rn__metadata *md = &cl->md;
    if (md->in_flight || rn__now_ms() < md->not_before) {
        md->again = true;
        return 0;
    }
    md->again = false;
    Runnel__MetadataRequest mr = RUNNEL__METADATA_REQUEST__INIT;
    mr.n_topics = md->n_wanted;
    mr.topics = md->wanted;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_METADATA;
    h.metadata = &mr;
    rn__conn *c = rn__client_conn_any(cl);
    if (!c)
        return -ENOMEM;
    int rc = rn__conn_send(c, &h, NULL, 0, RUNNEL__API__METADATA, cl->conf->socket_timeout_ms,
                           false, md_cb, cl);
    if (rc < 0)
        return rc;
    md->in_flight = true;
    return 0;
}

int rn__md_wait_topic(rn__client *cl, const char *topic, int timeout_ms, rn__md_topic **out)
{
    rn__metadata *md = &cl->md;
    *out = NULL;
    rn__md_topic *t = rn__md_find(cl, topic);
    if (t && t->err == 0) {
        *out = t;
        return 0;
    }
    if (rn__md_want(cl, topic) < 0)
        return rn__fail(cl, -ENOMEM, "out of memory");
    int64_t deadline = rn__now_ms() + timeout_ms;
    size_t failures = 0;
    /* The answer must come from a request sent after the topic was wanted: one
     * in flight now may not ask for it, so wait for the one after it. */
    uint64_t target = md->generation + (md->in_flight ? 2 : 1);
    for (;;) {
        if (!md->in_flight && md->generation >= target) {
            if (md->good_generation == md->generation) {
                t = rn__md_find(cl, topic);
                if (t && t->err == 0) {
                    *out = t;
                    return 0;
                }
                if (t)
                    return rn__fail(cl, t->err, "topic %s: %s", topic, rn_strerror(t->err));
                return rn__fail(cl, -RN_E_UNKNOWN_TOPIC, "topic %s: not in the metadata answer",
                                topic);
            }
            /* md_cb moved next_boot on: the next bootstrap server is tried
             * at once. When every one has failed: no server to connect to is
             * an answer (a clear error within connect.timeout.ms), while a
             * connection that dropped mid-request (a broker restarting, a
             * proxy cutting) is retried after a back-off until the deadline,
             * as Kafka clients do. */
            bool unreachable = md->last_err == -ECONNREFUSED || md->last_err == -EHOSTUNREACH ||
                               md->last_err == -ENETUNREACH;
            ++failures;
            if (!rn__retriable(md->last_err) || (unreachable && failures >= cl->n_boot))
                return rn__fail(cl, md->last_err, "%s", md->errmsg);
            target = md->generation + 1;
            if (failures % cl->n_boot == 0) {
                int64_t until = rn__now_ms() + cl->conf->retry_backoff_ms;
                if (until > deadline)
                    until = deadline;
                for (int64_t now = rn__now_ms(); now < until; now = rn__now_ms())
                    if (rn__client_poll(cl, (int)(until - now)) < 0)
                        break;
            }
        }
        if (!md->in_flight) {
            md->not_before = 0;
            if (rn__md_refresh(cl) < 0)
                return rn__fail(cl, -ENOMEM, "out of memory");
        }
        int64_t left = deadline - rn__now_ms();
        if (left <= 0)
            return rn__fail(cl, -RN_E_TIMEOUT, "no metadata for topic %s after %d ms%s%s", topic,
                            timeout_ms, md->last_err ? ": " : "", md->last_err ? md->errmsg : "");
        int rc = rn__client_poll(cl, (int)left);
        if (rc < 0)
            return rn__fail(cl, rc, "poll: %s", rn_strerror(rc));
    }
}

int rn__md_leader(rn__client *cl, const char *topic, int32_t partition, rn__conn **conn)
{
    *conn = NULL;
    rn__md_topic *t = rn__md_find(cl, topic);
    if (!t || t->err || partition < 0 || partition >= t->n_parts)
        return -RN_E_UNKNOWN_TOPIC;
    const rn__md_part *p = &t->parts[partition];
    if (p->leader < 0)
        return -RN_E_NOT_LEADER;
    rn__conn *c = rn__client_conn_node(cl, p->leader);
    if (!c)
        return -RN_E_NOT_LEADER;
    *conn = c;
    return 0;
}
