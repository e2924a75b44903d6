/*
 * metrics.c — request latency histograms and per-partition counters, rendered
 * in the Prometheus text format (see metrics.h).
 *
 * Histogram buckets are stored per bucket (not cumulative) so an observation
 * is one increment; rendering accumulates them into Prometheus' cumulative
 * `le` buckets.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "broker/broker.h"
#include "broker/meta/quorum.h"
#include "broker/metrics.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "broker/partition_health.h"

const uint64_t rn_metrics_bucket_us[RN_METRICS_N_BUCKETS] = {
    50,    100,   250,    500,    1000,   2500,    5000,    10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 5000000, UINT64_MAX};

void rn_metrics_observe(rn_metrics *m, int api, int err, uint64_t dur_ns)
{
    if (api < 0 || api >= RN_METRICS_N_API)
        api = 0;
    rn_api_metrics *a = &m->api[api];
    uint64_t us = dur_ns / 1000;
    a->requests++;
    if (err)
        a->errors++;
    a->sum_us += us;
    unsigned i = 0;
    while (i + 1 < RN_METRICS_N_BUCKETS && us > rn_metrics_bucket_us[i])
        i++;
    a->buckets[i]++;
}

void rn_metrics_isr_shrink(rn_metrics *m)
{
    m->isr_shrinks++;
}

void rn_metrics_isr_expand(rn_metrics *m)
{
    m->isr_expands++;
}

void rn_metrics_replica_lag(rn_partition_metrics *m, int64_t lag)
{
    /* Two plain stores read by the renderer on reactor 0 without a lock: a
     * render between them shows the old lag once, never a torn value. */
    m->replica_lag = lag < 0 ? 0 : (uint64_t)lag;
    m->replica_following = lag >= 0;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void put(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *s, const char *fmt, ...)
{
    if (s->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->oom = true;
            return;
        }
        if ((size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = (s->cap + (size_t)n) * 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = true;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
}

/* Every reactor's counters added up. They are bumped without atomics by
 * their own threads; a relaxed load sees each value whole (all are aligned
 * uint64_t), possibly a moment old. */
static void sum_reactors(const rn_broker *b, rn_metrics *m)
{
    _Static_assert(sizeof(rn_metrics) % sizeof(uint64_t) == 0, "rn_metrics is all uint64_t");
    memset(m, 0, sizeof(*m));
    uint64_t *dst = (uint64_t *)m;
    for (unsigned r = 0; r < b->n_reactors; r++) {
        const uint64_t *src = (const uint64_t *)&b->reactors[r].metrics;
        for (size_t i = 0; i < sizeof(*m) / sizeof(uint64_t); i++)
            dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
}

int rn_metrics_render(rn_broker *b, char **out, size_t *len)
{
    sbuf s = {.cap = 4096};
    s.p = malloc(s.cap);
    if (!s.p)
        return -ENOMEM;
    s.p[0] = 0;
    rn_metrics sum, *m = &sum;
    sum_reactors(b, &sum);

    put(&s,
        "# HELP runnel_connections_active Open client connections.\n"
        "# TYPE runnel_connections_active gauge\nrunnel_connections_active %" PRIu64 "\n",
        m->connections_active);
    put(&s, "# TYPE runnel_connections_total counter\nrunnel_connections_total %" PRIu64 "\n",
        m->connections_total);
    put(&s,
        "# TYPE runnel_connections_rejected_total counter\n"
        "runnel_connections_rejected_total %" PRIu64 "\n",
        m->connections_rejected);
    put(&s,
        "# TYPE runnel_network_received_bytes_total counter\n"
        "runnel_network_received_bytes_total %" PRIu64 "\n",
        m->bytes_received);
    put(&s,
        "# TYPE runnel_network_sent_bytes_total counter\n"
        "runnel_network_sent_bytes_total %" PRIu64 "\n",
        m->bytes_sent);
    put(&s,
        "# TYPE runnel_protocol_errors_total counter\nrunnel_protocol_errors_total %" PRIu64 "\n",
        m->protocol_errors);
    put(&s,
        "# HELP runnel_frame_buffers_total Buffers for frames that span receives: reused "
        "(warm), allocated, freed for want of room in the pool.\n"
        "# TYPE runnel_frame_buffers_total counter\n"
        "runnel_frame_buffers_total{outcome=\"reused\"} %" PRIu64 "\n"
        "runnel_frame_buffers_total{outcome=\"allocated\"} %" PRIu64 "\n"
        "runnel_frame_buffers_total{outcome=\"freed\"} %" PRIu64 "\n",
        m->frame_pool.hits, m->frame_pool.misses, m->frame_pool.dropped);
    put(&s,
        "# HELP runnel_frame_buffers_idle_bytes Frame buffers kept for reuse.\n"
        "# TYPE runnel_frame_buffers_idle_bytes gauge\n"
        "runnel_frame_buffers_idle_bytes %" PRIu64 "\n",
        m->frame_pool.idle_bytes);

    put(&s,
        "# HELP runnel_storage_errors_total Appends that failed for a storage reason (disk "
        "full, I/O error).\n"
        "# TYPE runnel_storage_errors_total counter\nrunnel_storage_errors_total %" PRIu64 "\n",
        __atomic_load_n(&b->storage_errors_total, __ATOMIC_RELAXED));
    put(&s,
        "# HELP runnel_partitions_storage_error Partitions whose appends fail now for a "
        "storage reason.\n"
        "# TYPE runnel_partitions_storage_error gauge\nrunnel_partitions_storage_error %d\n",
        __atomic_load_n(&b->parts_storage_error, __ATOMIC_RELAXED));
    put(&s,
        "# HELP runnel_partitions_disk_full Partitions whose appends fail now for want of "
        "disk space.\n"
        "# TYPE runnel_partitions_disk_full gauge\nrunnel_partitions_disk_full %d\n",
        __atomic_load_n(&b->parts_disk_full, __ATOMIC_RELAXED));
    if (b->quorum) { /* the metadata quorum (DESIGN §8) */
        rn_quorum_status *st = malloc(sizeof(*st));
        if (st) {
            rn_quorum_status_get(b->quorum, st);
            int fenced = 0;
            for (int i = 0; i < st->n_brokers; i++)
                fenced += st->brokers[i].fenced;
            put(&s,
                "# HELP runnel_controller_active 1 on the active controller (the metadata "
                "quorum's leader).\n"
                "# TYPE runnel_controller_active gauge\nrunnel_controller_active %d\n"
                "# HELP runnel_controller_epoch The metadata quorum's epoch.\n"
                "# TYPE runnel_controller_epoch gauge\nrunnel_controller_epoch %d\n"
                "# HELP runnel_metadata_high_watermark The metadata log's commit offset.\n"
                "# TYPE runnel_metadata_high_watermark gauge\nrunnel_metadata_high_watermark "
                "%" PRId64 "\n"
                "# HELP runnel_metadata_applied_offset Metadata log entries applied here.\n"
                "# TYPE runnel_metadata_applied_offset gauge\nrunnel_metadata_applied_offset "
                "%" PRId64 "\n"
                "# HELP runnel_brokers_registered Brokers registered with the controller.\n"
                "# TYPE runnel_brokers_registered gauge\nrunnel_brokers_registered %d\n"
                "# HELP runnel_brokers_fenced Registered brokers fenced for a missed session.\n"
                "# TYPE runnel_brokers_fenced gauge\nrunnel_brokers_fenced %d\n",
                st->leader == st->node_id && st->leader >= 0, st->epoch, st->hw, st->applied,
                st->n_brokers, fenced);
            put(&s,
                "# HELP runnel_metadata_log_start_offset The metadata log's first offset kept "
                "(snapshots delete below it).\n"
                "# TYPE runnel_metadata_log_start_offset gauge\nrunnel_metadata_log_start_offset "
                "%" PRId64 "\n"
                "# HELP runnel_metadata_snapshot_end_offset The end offset of this broker's latest "
                "metadata snapshot (0: none).\n"
                "# TYPE runnel_metadata_snapshot_end_offset gauge\n"
                "runnel_metadata_snapshot_end_offset %" PRId64 "\n"
                "# HELP runnel_metadata_snapshots_written_total Metadata snapshots written by "
                "this process.\n"
                "# TYPE runnel_metadata_snapshots_written_total counter\n"
                "runnel_metadata_snapshots_written_total %" PRId64 "\n"
                "# HELP runnel_metadata_snapshots_installed_total Metadata snapshots fetched from "
                "the leader and installed by this process.\n"
                "# TYPE runnel_metadata_snapshots_installed_total counter\n"
                "runnel_metadata_snapshots_installed_total %" PRId64 "\n",
                st->log_start, st->snapshot_end, st->snapshots_written, st->snapshots_installed);
            /* Every role with 0 or 1, so a change of role is a change of
             * value, not a series that vanishes (observer: a broker-only
             * node that replicates the log without voting). */
            static const char *const roles[] = {"leader",      "follower",   "candidate",
                                                "prospective", "unattached", "resigned",
                                                "observer"};
            put(&s, "# HELP runnel_quorum_role This broker's role in the metadata quorum (1 on "
                    "the current one).\n"
                    "# TYPE runnel_quorum_role gauge\n");
            for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
                put(&s, "runnel_quorum_role{role=\"%s\"} %d\n", roles[i],
                    st->role && !strcmp(st->role, roles[i]));
            put(&s,
                "# HELP runnel_quorum_voter 1 when this broker is a voter of the metadata quorum, "
                "0 "
                "for an observer.\n"
                "# TYPE runnel_quorum_voter gauge\nrunnel_quorum_voter %d\n",
                !(st->role && !strcmp(st->role, "observer")));
            free(st);
        }
    }
    /* Partition health from the metadata image (partition_health.h): this
     * runs on reactor 0, the image's owner. */
    rn_health *hl = malloc(sizeof(*hl));
    if (hl) {
        rn_health_scan_metadata(hl, b->md, b->cfg.node_id, 0);
        put(&s,
            "# HELP runnel_under_replicated_partitions Partitions this broker leads whose ISR is "
            "smaller than their replicas.\n"
            "# TYPE runnel_under_replicated_partitions gauge\n"
            "runnel_under_replicated_partitions %" PRId64 "\n"
            "# HELP runnel_cluster_under_replicated_partitions Partitions of the whole cluster "
            "whose ISR is smaller than their replicas (this broker's metadata image).\n"
            "# TYPE runnel_cluster_under_replicated_partitions gauge\n"
            "runnel_cluster_under_replicated_partitions %" PRId64 "\n"
            "# HELP runnel_cluster_offline_partitions Partitions with no leader or a fenced one "
            "(this broker's metadata image).\n"
            "# TYPE runnel_cluster_offline_partitions gauge\n"
            "runnel_cluster_offline_partitions %" PRId64 "\n"
            "# HELP runnel_cluster_partitions Partitions in the metadata image.\n"
            "# TYPE runnel_cluster_partitions gauge\nrunnel_cluster_partitions %" PRId64 "\n",
            hl->n_under_replicated_led, hl->n_under_replicated, hl->n_offline, hl->n_partitions);
    } else {
        s.oom = true;
    }
    free(hl);
    put(&s,
        "# HELP runnel_isr_shrinks_total ISR shrinks of partitions this broker leads.\n"
        "# TYPE runnel_isr_shrinks_total counter\nrunnel_isr_shrinks_total %" PRIu64 "\n"
        "# HELP runnel_isr_expands_total ISR expansions of partitions this broker leads.\n"
        "# TYPE runnel_isr_expands_total counter\nrunnel_isr_expands_total %" PRIu64 "\n",
        m->isr_shrinks, m->isr_expands);
    struct statvfs sv;
    if (statvfs(b->cfg.data_dir, &sv) == 0) {
        put(&s,
            "# HELP runnel_data_dir_free_bytes Bytes free for runneld on the data "
            "directory's file system.\n"
            "# TYPE runnel_data_dir_free_bytes gauge\nrunnel_data_dir_free_bytes %" PRIu64 "\n",
            (uint64_t)sv.f_bavail * sv.f_frsize);
        put(&s, "# TYPE runnel_data_dir_size_bytes gauge\nrunnel_data_dir_size_bytes %" PRIu64 "\n",
            (uint64_t)sv.f_blocks * sv.f_frsize);
    }

    put(&s, "# HELP runnel_request_duration_seconds Request latency by API.\n"
            "# TYPE runnel_request_duration_seconds histogram\n");
    for (int api = 1; api < RN_METRICS_N_API; api++) {
        rn_api_metrics *a = &m->api[api];
        if (!a->requests)
            continue;
        const char *name = rn_frame_api_name(api);
        uint64_t cum = 0;
        for (int i = 0; i < RN_METRICS_N_BUCKETS; i++) {
            cum += a->buckets[i];
            if (rn_metrics_bucket_us[i] == UINT64_MAX)
                put(&s,
                    "runnel_request_duration_seconds_bucket{api=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                    name, cum);
            else
                put(&s,
                    "runnel_request_duration_seconds_bucket{api=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                    name, (double)rn_metrics_bucket_us[i] / 1e6, cum);
        }
        put(&s, "runnel_request_duration_seconds_sum{api=\"%s\"} %g\n", name,
            (double)a->sum_us / 1e6);
        put(&s, "runnel_request_duration_seconds_count{api=\"%s\"} %" PRIu64 "\n", name,
            a->requests);
        put(&s, "runnel_request_errors_total{api=\"%s\"} %" PRIu64 "\n", name, a->errors);
    }

    static const char *const fams[][2] = {
        {"runnel_partition_bytes_in_total", "counter"},
        {"runnel_partition_records_in_total", "counter"},
        {"runnel_partition_bytes_out_total", "counter"},
        {"runnel_partition_records_out_total", "counter"},
        {"runnel_partition_produce_errors_total", "counter"},
        {"runnel_partition_log_end_offset", "gauge"},
        {"runnel_partition_log_start_offset", "gauge"},
        {"runnel_partition_high_watermark", "gauge"},
        {"runnel_partition_size_bytes", "gauge"},
        {"runnel_partition_storage_error", "gauge"}, /* 1 while appends fail for storage */
    };
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        put(&s, "# TYPE %s %s\n", fams[f][0], fams[f][1]);
        rn_partition_table *pt = &b->reactors[0].pt; /* rendered on reactor 0 */
        for (unsigned t = 0; t < pt->n_topics; t++) {
            rn_topic_state *ts = pt->topics[t];
            for (int32_t p = 0; p < ts->n_partitions; p++) {
                rn_partition *pa = ts->parts[p];
                if (!pa || !pa->log)
                    continue;
                uint64_t v = 0;
                int64_t lso, hw, leo;
                rn_partition_offsets(pa, &lso, &hw, &leo);
                switch (f) {
                case 0:
                    v = pa->m.bytes_in;
                    break;
                case 1:
                    v = pa->m.records_in;
                    break;
                case 2:
                    v = pa->m.bytes_out;
                    break;
                case 3:
                    v = pa->m.records_out;
                    break;
                case 4:
                    v = pa->m.produce_errors;
                    break;
                case 5:
                    v = (uint64_t)leo;
                    break;
                case 6:
                    v = (uint64_t)lso;
                    break;
                case 7:
                    v = (uint64_t)hw;
                    break;
                case 8:
                    v = rn_partition_size(pa);
                    break;
                case 9:
                    v = __atomic_load_n(&pa->storage_err, __ATOMIC_RELAXED) != 0;
                    break;
                }
                put(&s, "%s{topic=\"%s\",partition=\"%d\"} %" PRIu64 "\n", fams[f][0], ts->name, p,
                    v);
            }
        }
    }
    put(&s, "# HELP runnel_partition_replica_lag Offsets this follower is behind the "
            "partition's leader.\n"
            "# TYPE runnel_partition_replica_lag gauge\n");
    rn_partition_table *pt = &b->reactors[0].pt;
    for (unsigned t = 0; t < pt->n_topics; t++) {
        rn_topic_state *ts = pt->topics[t];
        for (int32_t p = 0; p < ts->n_partitions; p++) {
            rn_partition *pa = ts->parts[p];
            if (pa && __atomic_load_n(&pa->m.replica_following, __ATOMIC_RELAXED))
                put(&s, "runnel_partition_replica_lag{topic=\"%s\",partition=\"%d\"} %" PRIu64 "\n",
                    ts->name, p, __atomic_load_n(&pa->m.replica_lag, __ATOMIC_RELAXED));
        }
    }
    if (s.oom) {
        free(s.p);
        return -ENOMEM;
    }
    *out = s.p;
    *len = s.len;
    return 0;
}
