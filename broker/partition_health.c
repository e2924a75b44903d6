/*
 * partition_health.c — under-replicated and offline partitions (see
 * partition_health.h for the rules and who calls this).
 *
 * The scan is linear in partitions and fenced brokers (at most
 * RN_MAX_BROKERS), and stops listing, never counting, at the
 * cap, so a 100,000-partition cluster answers in one pass with whole counts
 * and bounded lists.
 */
#include "broker/meta/metadata.h"
#include "broker/partition_health.h"

static bool is_fenced(int32_t id, const int32_t *fenced, size_t n_fenced)
{
    for (size_t i = 0; i < n_fenced; i++)
        if (fenced[i] == id)
            return true;
    return false;
}

unsigned rn_partition_health_of(const rn_partition_info *p, const int32_t *fenced, size_t n_fenced)
{
    unsigned bits = 0;
    if (p->n_isr < p->n_replicas)
        bits |= RN_HEALTH_UNDER_REPLICATED;
    if (p->leader < 0 || is_fenced(p->leader, fenced, n_fenced))
        bits |= RN_HEALTH_OFFLINE;
    return bits;
}

void rn_health_scan(rn_health *h, const rn_topic_info *(*topic_at)(const void *arg, unsigned i),
                    const void *arg, unsigned n_topics, int32_t self, const int32_t *fenced,
                    size_t n_fenced, size_t max_listed)
{
    if (max_listed > RN_HEALTH_MAX_LISTED)
        max_listed = RN_HEALTH_MAX_LISTED;
    h->n_partitions = h->n_under_replicated = h->n_offline = h->n_under_replicated_led = 0;
    h->n_under_listed = h->n_offline_listed = 0;
    for (unsigned t = 0; t < n_topics; t++) {
        const rn_topic_info *ti = topic_at(arg, t);
        if (!ti)
            continue;
        for (int32_t i = 0; i < ti->n_partitions; i++) {
            const rn_partition_info *p = &ti->partitions[i];
            unsigned bits = rn_partition_health_of(p, fenced, n_fenced);
            h->n_partitions++;
            if (bits & RN_HEALTH_UNDER_REPLICATED) {
                h->n_under_replicated++;
                h->n_under_replicated_led += p->leader == self;
                if (h->n_under_listed < max_listed)
                    h->under[h->n_under_listed++] = (rn_health_item){ti, p};
            }
            if (bits & RN_HEALTH_OFFLINE) {
                h->n_offline++;
                if (h->n_offline_listed < max_listed)
                    h->offline[h->n_offline_listed++] = (rn_health_item){ti, p};
            }
        }
    }
}

static const rn_topic_info *md_topic_at(const void *arg, unsigned i)
{
    return rn_metadata_topic_at(arg, i);
}

void rn_health_scan_metadata(rn_health *h, const rn_metadata *md, int32_t self, size_t max_listed)
{
    int32_t fenced[RN_MAX_BROKERS];
    size_t n_fenced = 0;
    unsigned n = md ? rn_metadata_broker_count(md) : 0;
    for (unsigned i = 0; i < n && n_fenced < RN_MAX_BROKERS; i++) {
        const rn_broker_info *bi = rn_metadata_broker_at(md, i);
        if (bi && bi->fenced)
            fenced[n_fenced++] = bi->id;
    }
    rn_health_scan(h, md_topic_at, md, md ? rn_metadata_topic_count(md) : 0, self, fenced, n_fenced,
                   max_listed);
}
