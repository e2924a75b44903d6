/*
 * partition_changes.c — the metadata's partition-level mutators: an ISR
 * change (the leader's proposal), a leader election, a replica move
 * (reassignment). Each validates against the image, as topic_changes.c's
 * topic-level mutators do, and submits one record (PartitionChangeRecord,
 * PartitionReassignRecord) as one change through the same path
 * (metadata_int.h); the image applies it and checks it again when it
 * commits (image.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/meta/image.h"
#include "broker/meta/metadata.h"
#include "broker/meta/metadata_int.h"
#include "broker/meta/records.h"
#include "protocol/errors.h"

/* Propose a PartitionChangeRecord: isr[0..n_isr) and, when elect, leader. */
static int propose_change(rn_metadata *md, const uint8_t topic_id[16], int32_t partition,
                          int32_t leader_epoch, int32_t partition_epoch, const int32_t *isr,
                          size_t n_isr, bool elect, int32_t leader, rn_metadata_cb cb, void *arg,
                          char *err, size_t errlen)
{
    int rc = rn__metadata_check_failed(md, err, errlen);
    if (rc < 0)
        return rc;
    const rn_topic_info *t = rn_image_find_id(md->image, topic_id, 16);
    if (!t || partition < 0 || partition >= t->n_partitions)
        return rn_errf(-RN_E_UNKNOWN_TOPIC, err, errlen, "partition %d of an unknown topic",
                       partition);
    const rn_partition_info *p = &t->partitions[partition];
    if (!elect)
        leader = p->leader;
    /* The image's rule, checked against what this broker sees for a clear
     * error now; it is checked again when the record applies. */
    if (!rn_image_isr_ok(md->image, p, isr, n_isr, elect, leader))
        return rn_errf(-RN_E_INVALID_REQUEST, err, errlen,
                       "%s-%d: an ISR must be distinct live replicas with the leader (%d)", t->name,
                       partition, leader);
    change *c = rn__metadata_change_new(CHANGE_ALTER, topic_id, cb, arg);
    if (!c)
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    encoder e;
    rn__metadata_enc_init(&e);
    md_change_record cr = RUNNEL__METADATA__PARTITION_CHANGE_RECORD__INIT;
    cr.topic_id.len = 16;
    cr.topic_id.data = c->id;
    cr.partition = partition;
    cr.leader_epoch = leader_epoch;
    cr.partition_epoch = partition_epoch;
    cr.n_isr = n_isr;
    cr.isr = (int32_t *)isr;
    cr.elect = elect;
    cr.leader = elect ? leader : 0;
    cr.min_isr = rn__metadata_topic_min_isr(md, t);
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_CHANGE;
    r.partition_change = &cr;
    rc = rn__metadata_enc_add(&e, &r);
    return rn__metadata_submit(md, &e, c, rc, t->name, err, errlen);
}

int rn_metadata_alter_isr(rn_metadata *md, const uint8_t topic_id[16], int32_t partition,
                          int32_t leader_epoch, int32_t partition_epoch, const int32_t *isr,
                          size_t n_isr, rn_metadata_cb cb, void *arg, char *err, size_t errlen)
{
    return propose_change(md, topic_id, partition, leader_epoch, partition_epoch, isr, n_isr, false,
                          -1, cb, arg, err, errlen);
}

int rn_metadata_elect_leader(rn_metadata *md, const uint8_t topic_id[16], int32_t partition,
                             int32_t leader_epoch, int32_t partition_epoch, int32_t leader,
                             rn_metadata_cb cb, void *arg, char *err, size_t errlen)
{
    const rn_topic_info *t = rn_image_find_id(md->image, topic_id, 16);
    if (!t || partition < 0 || partition >= t->n_partitions)
        return rn_errf(-RN_E_UNKNOWN_TOPIC, err, errlen, "partition %d of an unknown topic",
                       partition);
    const rn_partition_info *p = &t->partitions[partition];
    return propose_change(md, topic_id, partition, leader_epoch, partition_epoch, p->isr,
                          (size_t)p->n_isr, true, leader, cb, arg, err, errlen);
}

int rn_metadata_reassign(rn_metadata *md, const char *topic_name, int32_t partition,
                         const int32_t *target, size_t n, int64_t throttle, rn_metadata_cb cb,
                         void *arg, char *err, size_t errlen)
{
    const rn_topic_info *t;
    int rc = rn__metadata_check_target(md, topic_name, &t, err, errlen);
    if (rc < 0)
        return rc;
    if (partition < 0 || partition >= t->n_partitions)
        return rn_errf(-RN_E_UNKNOWN_TOPIC, err, errlen, "topic %s has no partition %d", topic_name,
                       partition);
    if (n < 1 || n > RN_MAX_BROKERS)
        return rn_errf(-RN_E_INVALID_REQUEST, err, errlen,
                       "%s-%d: a move needs 1 to %d target replicas, not %zu", topic_name,
                       partition, RN_MAX_BROKERS, n);
    const rn_partition_info *p = &t->partitions[partition];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            if (target[j] == target[i])
                return rn_errf(-RN_E_INVALID_REQUEST, err, errlen,
                               "%s-%d: broker %d is named twice", topic_name, partition, target[i]);
        const rn_broker_info *b = rn_image_broker(md->image, target[i]);
        bool replica = false;
        for (int32_t j = 0; j < p->n_replicas; j++)
            replica |= p->replicas[j] == target[i];
        /* A new replica must be a live broker; one it has may be down. */
        if (!b || (!replica && b->fenced))
            return rn_errf(-RN_E_INVALID_REQUEST, err, errlen, "%s-%d: broker %d is %s", topic_name,
                           partition, target[i], b ? "fenced" : "not registered");
    }
    change *c = rn__metadata_change_new(CHANGE_ALTER, t->id, cb, arg);
    if (!c)
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    encoder e;
    rn__metadata_enc_init(&e);
    md_reassign_record rr = RUNNEL__METADATA__PARTITION_REASSIGN_RECORD__INIT;
    rr.topic_id.len = 16;
    rr.topic_id.data = c->id;
    rr.partition = partition;
    /* Absolute: it applies on top of whatever committed meanwhile (an ISR
     * change, a move decided on another broker), as Kafka's controller
     * applies a reassignment to the partition as it finds it. */
    rr.partition_epoch = -1;
    rr.n_target_replicas = n;
    rr.target_replicas = (int32_t *)target;
    rr.throttle_rate = throttle > 0 ? throttle : 0;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_REASSIGN;
    r.partition_reassign = &rr;
    rc = rn__metadata_enc_add(&e, &r);
    return rn__metadata_submit(md, &e, c, rc, topic_name, err, errlen);
}
