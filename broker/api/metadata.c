/*
 * api/metadata.c — ApiVersions and Metadata.
 *
 * Metadata answers from the state machine (broker/meta/metadata.c), never from
 * files: brokers (this one alone, or in a cluster every registered broker not
 * fenced, from the metadata quorum), the controller, and
 * for each topic asked (or all) its partitions with leader, leader epoch,
 * replicas and ISR, which is what clients need to find leaders (DESIGN §8).
 */
#include <stdlib.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/meta/metadata.h"
#include "broker/meta/quorum.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "protocol/topic_name.h"

void rn_handle_api_versions(rn_request *req)
{
    size_t n;
    const rn_frame_api *apis = rn_frame_apis(&n);
    Runnel__ApiVersion *v = calloc(n ? n : 1, sizeof(*v));
    Runnel__ApiVersion **pv = calloc(n ? n : 1, sizeof(*pv));
    if (!v || !pv) {
        free(v);
        free(pv);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        runnel__api_version__init(&v[i]);
        v[i].api = (Runnel__Api)apis[i].api;
        v[i].min_version = apis[i].min_version;
        v[i].max_version = apis[i].max_version;
        pv[i] = &v[i];
    }
    Runnel__ApiVersionsResponse r = RUNNEL__API_VERSIONS_RESPONSE__INIT;
    r.n_api_versions = n;
    r.api_versions = pv;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_API_VERSIONS;
    h.api_versions = &r;
    rn_request_respond(req, &h, NULL, 0);
    free(v);
    free(pv);
}

typedef struct md_build {
    Runnel__TopicMetadata *topics;
    Runnel__TopicMetadata **tptrs;
    Runnel__PartitionMetadata *parts;
    Runnel__PartitionMetadata **pptrs;
    size_t n_topics, n_parts;
} md_build;

static void fill_topic(md_build *m, const rn_broker *b, const rn_topic_info *t, const char *name)
{
    Runnel__TopicMetadata *tm = &m->topics[m->n_topics];
    runnel__topic_metadata__init(tm);
    m->tptrs[m->n_topics++] = tm;
    tm->name = (char *)name;
    if (!t) {
        tm->error_code = RN_E_UNKNOWN_TOPIC;
        return;
    }
    tm->is_internal = rn_topic_is_internal(t->name);
    /* The value handle_produce checks batches against (an override this
     * version refuses is skipped there too). */
    rn_log_config lc;
    rn_topic_log_config(t, &b->cfg.log, &lc);
    tm->max_message_bytes = lc.max_batch_bytes;
    tm->n_partitions = (size_t)t->n_partitions;
    tm->partitions = m->pptrs + m->n_parts;
    for (int32_t i = 0; i < t->n_partitions; i++) {
        Runnel__PartitionMetadata *pm = &m->parts[m->n_parts];
        runnel__partition_metadata__init(pm);
        m->pptrs[m->n_parts++] = pm;
        const rn_partition_info *pi = &t->partitions[i];
        pm->partition = pi->partition;
        pm->leader = pi->leader;
        pm->leader_epoch = pi->leader_epoch;
        pm->n_replicas = (size_t)pi->n_replicas;
        pm->replicas = (int32_t *)pi->replicas;
        pm->n_isr = (size_t)pi->n_isr;
        pm->isr = (int32_t *)pi->isr;
    }
}

void rn_handle_metadata(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__MetadataRequest *mr = req->fr.hdr->metadata;
    size_t n_topics = mr->n_topics ? mr->n_topics : rn_metadata_topic_count(b->md);
    size_t n_parts = 0;
    for (size_t i = 0; i < n_topics; i++) {
        const rn_topic_info *t = mr->n_topics ? rn_metadata_find(b->md, mr->topics[i])
                                              : rn_metadata_topic_at(b->md, (unsigned)i);
        if (t)
            n_parts += (size_t)t->n_partitions;
    }
    md_build m = {0};
    m.topics = calloc(n_topics ? n_topics : 1, sizeof(*m.topics));
    m.tptrs = calloc(n_topics ? n_topics : 1, sizeof(*m.tptrs));
    m.parts = calloc(n_parts ? n_parts : 1, sizeof(*m.parts));
    m.pptrs = calloc(n_parts ? n_parts : 1, sizeof(*m.pptrs));
    if (!m.topics || !m.tptrs || !m.parts || !m.pptrs) {
        rn_request_fail(req, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_topics; i++) {
        if (mr->n_topics) {
            fill_topic(&m, b, rn_metadata_find(b->md, mr->topics[i]), mr->topics[i]);
        } else {
            const rn_topic_info *t = rn_metadata_topic_at(b->md, (unsigned)i);
            fill_topic(&m, b, t, t->name);
        }
    }
    Runnel__MetadataResponse r = RUNNEL__METADATA_RESPONSE__INIT;
    Runnel__Broker br = RUNNEL__BROKER__INIT;
    Runnel__Broker *brp = &br;
    br.node_id = b->cfg.node_id;
    br.host = b->host;
    br.port = b->port;
    r.n_brokers = 1;
    r.brokers = &brp;
    r.controller_id = b->cfg.node_id;
    /* In a cluster: every registered broker that is not fenced (as Kafka
     * lists the live ones), so clients reach a partition's leader. */
    static const size_t MAXB =
        sizeof(((rn_quorum_status *)0)->brokers) / sizeof(((rn_quorum_status *)0)->brokers[0]);
    rn_quorum_status *st = b->quorum ? malloc(sizeof(*st)) : NULL;
    Runnel__Broker *cb = st ? calloc(MAXB, sizeof(*cb)) : NULL;
    Runnel__Broker **cbp = st ? calloc(MAXB, sizeof(*cbp)) : NULL;
    char(*hosts)[256] = st ? calloc(MAXB, sizeof(*hosts)) : NULL;
    if (st && cb && cbp && hosts) {
        rn_quorum_status_get(b->quorum, st);
        size_t n = 0;
        for (int i = 0; i < st->n_brokers; i++) {
            const rn_quorum_broker *qb = &st->brokers[i];
            uint16_t port;
            if (qb->fenced ||
                rn_config_parse_hostport(qb->endpoint, hosts[n], sizeof(hosts[n]), &port) < 0)
                continue;
            runnel__broker__init(&cb[n]);
            cb[n].node_id = qb->id;
            cb[n].host = hosts[n];
            cb[n].port = port;
            cbp[n] = &cb[n];
            n++;
        }
        if (n) {
            r.n_brokers = n;
            r.brokers = cbp;
        }
        r.controller_id = st->leader;
    }
    r.cluster_id = "runnel";
    r.n_topics = m.n_topics;
    r.topics = m.tptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_METADATA;
    h.metadata = &r;
    rn_request_respond(req, &h, NULL, 0);
    free(st);
    free(cb);
    free(cbp);
    free(hosts);
out:
    free(m.topics);
    free(m.tptrs);
    free(m.parts);
    free(m.pptrs);
}
