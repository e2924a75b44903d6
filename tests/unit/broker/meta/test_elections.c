/*
 * test_elections.c — the controller's decisions the image derives
 * (broker/meta/image.h, placement.h): replica placement, brokers registered
 * and fenced, leaders moving to ISR members and never elsewhere, ISR changes
 * applied only with the epochs they were proposed against, and a snapshot of
 * all of it loading back into an equal image.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/meta/image.h"
#include "broker/meta/placement.h"
#include "broker/meta/snapshot.h"
#include "metadata.pb-c.h"
#include "protocol/errors.h"

typedef Runnel__Metadata__MetadataRecord md_record;

static uint8_t tid[16] = {7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static int apply(rn_image *img, md_record *r, rn_image_effect *eff)
{
    int status;
    cr_assert_eq(rn_image_apply(img, r, eff, &status), 0);
    return status;
}

static int broker_rec(rn_image *img, int32_t id, int64_t incarnation, bool fenced)
{
    Runnel__Metadata__BrokerRecord br = RUNNEL__METADATA__BROKER_RECORD__INIT;
    br.node_id = id;
    br.host = "127.0.0.1";
    br.port = (uint32_t)(9700 + id);
    br.incarnation = incarnation;
    br.fenced = fenced;
    br.kafka_endpoint = "";
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER;
    r.broker = &br;
    rn_image_effect eff;
    int st = apply(img, &r, &eff);
    if (st == 0)
        cr_assert_eq(eff.type, RN_IMAGE_BROKERS_CHANGED);
    return st;
}

static int fence(rn_image *img, int32_t id, bool fenced)
{
    Runnel__Metadata__BrokerFenceRecord fr = RUNNEL__METADATA__BROKER_FENCE_RECORD__INIT;
    fr.node_id = id;
    fr.fenced = fenced;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER_FENCE;
    r.broker_fence = &fr;
    return apply(img, &r, NULL);
}

/* Topic "t" with one partition on replicas[0..n), the first leading. */
static void topic3(rn_image *img, const int32_t *replicas, int n)
{
    Runnel__Metadata__TopicRecord tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
    tr.name = "t";
    tr.topic_id = (ProtobufCBinaryData){16, tid};
    tr.partitions = 1;
    tr.replication_factor = n;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC;
    r.topic = &tr;
    cr_assert_eq(apply(img, &r, NULL), 0);
    Runnel__Metadata__PartitionRecord pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
    pr.topic_id = tr.topic_id;
    pr.partition = 0;
    pr.n_replicas = pr.n_isr = (size_t)n;
    pr.replicas = pr.isr = (int32_t *)replicas;
    pr.leader = replicas[0];
    md_record rp = RUNNEL__METADATA__METADATA_RECORD__INIT;
    rp.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
    rp.partition = &pr;
    cr_assert_eq(apply(img, &rp, NULL), 0);
}

static int alter(rn_image *img, int32_t le, int32_t pe, const int32_t *isr, size_t n,
                 rn_image_effect *eff)
{
    Runnel__Metadata__PartitionChangeRecord cr = RUNNEL__METADATA__PARTITION_CHANGE_RECORD__INIT;
    cr.topic_id = (ProtobufCBinaryData){16, tid};
    cr.partition = 0;
    cr.leader_epoch = le;
    cr.partition_epoch = pe;
    cr.n_isr = n;
    cr.isr = (int32_t *)isr;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_CHANGE;
    r.partition_change = &cr;
    return apply(img, &r, eff);
}

static const rn_partition_info *part(rn_image *img)
{
    const rn_topic_info *t = rn_image_find(img, "t");
    cr_assert_not_null(t);
    return &t->partitions[0];
}

static void isr_is(rn_image *img, const int32_t *want, int n)
{
    const rn_partition_info *p = part(img);
    cr_assert_eq(p->n_isr, n, "ISR has %d members, want %d", p->n_isr, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(p->isr[i], want[i]);
}

static rn_image *cluster3(void)
{
    rn_image *img;
    cr_assert_eq(rn_image_new(&img), 0);
    for (int32_t id = 1; id <= 3; id++)
        cr_assert_eq(broker_rec(img, id, 100 + id, false), 0);
    int32_t reps[3] = {1, 2, 3};
    topic3(img, reps, 3);
    return img;
}

Test(placement, spreads_leaders_and_replicas)
{
    int32_t live[3] = {1, 2, 3}, r[3];
    int leads[4] = {0};
    for (int32_t p = 0; p < 30; p++) {
        cr_assert_eq(rn_placement_assign(live, 3, 3, tid, p, r), 0);
        cr_assert(r[0] != r[1] && r[1] != r[2] && r[0] != r[2], "replicas must be distinct");
        leads[r[0]]++;
    }
    cr_assert(leads[1] == 10 && leads[2] == 10 && leads[3] == 10, "leaders %d/%d/%d", leads[1],
              leads[2], leads[3]);
    cr_assert_eq(rn_placement_assign(live, 3, 4, tid, 0, r), -EINVAL);
    cr_assert_eq(rn_placement_assign(live, 3, 0, tid, 0, r), -EINVAL);
    cr_assert_eq(rn_placement_assign(live, 3, 1, tid, -1, r), -EINVAL);
}

Test(elections, brokers_register_sorted)
{
    rn_image *img;
    cr_assert_eq(rn_image_new(&img), 0);
    cr_assert_eq(broker_rec(img, 3, 1, false), 0);
    cr_assert_eq(broker_rec(img, 1, 1, false), 0);
    cr_assert_eq(broker_rec(img, 2, 1, true), 0);
    cr_assert_eq(rn_image_broker_count(img), 3);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(rn_image_broker_at(img, i)->id, (int32_t)i + 1);
    cr_assert_str_eq(rn_image_broker(img, 3)->endpoint, "127.0.0.1:9703");
    cr_assert(rn_image_broker(img, 2)->fenced);
    cr_assert_null(rn_image_broker(img, 4));
    cr_assert_eq(fence(img, 4, true), -RN_E_INVALID_REQUEST, "an unknown broker is skipped");
    rn_image_free(img);
}

Test(elections, fenced_leader_moves_to_next_isr_member)
{
    rn_image *img = cluster3();
    const rn_partition_info *p = part(img);
    cr_assert_eq(p->leader, 1);
    int32_t le = p->leader_epoch, pe = p->partition_epoch;
    cr_assert_eq(fence(img, 1, true), 0);
    p = part(img);
    cr_assert_eq(p->leader, 2);
    cr_assert_eq(p->leader_epoch, le + 1);
    cr_assert_eq(p->partition_epoch, pe + 1);
    int32_t want[2] = {2, 3};
    isr_is(img, want, 2);
    /* A follower fenced leaves the ISR, the leader stays. */
    cr_assert_eq(fence(img, 3, true), 0);
    p = part(img);
    cr_assert_eq(p->leader, 2);
    cr_assert_eq(p->leader_epoch, le + 1);
    int32_t want2[1] = {2};
    isr_is(img, want2, 1);
    /* The last ISR member stays in it and the partition has no leader:
     * broker 1 or 3 may have missed records, so neither is elected. */
    cr_assert_eq(fence(img, 2, true), 0);
    p = part(img);
    cr_assert_eq(p->leader, -1);
    isr_is(img, want2, 1);
    cr_assert_eq(fence(img, 1, false), 0);
    cr_assert_eq(part(img)->leader, -1, "1 is not in the ISR: no unclean election");
    cr_assert_eq(fence(img, 2, false), 0);
    cr_assert_eq(part(img)->leader, 2, "the last ISR member is back and leads");
    cr_assert_eq(part(img)->leader_epoch, le + 3);
    rn_image_free(img);
}

Test(elections, restarted_leader_loses_leadership)
{
    rn_image *img = cluster3();
    int32_t le = part(img)->leader_epoch;
    /* Same incarnation again (a re-registration): nothing moves. */
    cr_assert_eq(broker_rec(img, 1, 101, false), 0);
    cr_assert_eq(part(img)->leader, 1);
    /* A new incarnation may have lost unsynced writes. */
    cr_assert_eq(broker_rec(img, 1, 999, false), 0);
    cr_assert_eq(part(img)->leader, 2);
    cr_assert_eq(part(img)->leader_epoch, le + 1);
    int32_t want[2] = {2, 3};
    isr_is(img, want, 2);
    rn_image_free(img);
}

Test(elections, isr_change_needs_current_epochs)
{
    rn_image *img = cluster3();
    const rn_partition_info *p = part(img);
    int32_t le = p->leader_epoch, pe = p->partition_epoch;
    int32_t shrink[2] = {1, 3};
    rn_image_effect eff;
    cr_assert_eq(alter(img, le, pe, shrink, 2, &eff), 0);
    cr_assert_eq(eff.type, RN_IMAGE_PARTITION_CHANGED);
    cr_assert_eq(eff.partition, 0);
    isr_is(img, shrink, 2);
    cr_assert_eq(part(img)->partition_epoch, pe + 1);
    cr_assert_eq(part(img)->leader_epoch, le, "an ISR change keeps the leader epoch");
    /* The same proposal again is stale. */
    int32_t all[3] = {1, 2, 3};
    cr_assert_eq(alter(img, le, pe, all, 3, NULL), -RN_E_FENCED_LEADER_EPOCH);
    cr_assert_eq(alter(img, le, pe + 1, all, 3, NULL), 0);
    isr_is(img, all, 3);
    /* Malformed: without the leader, duplicates, a non-replica, empty. */
    int32_t noleader[2] = {2, 3}, dup[2] = {1, 1}, stranger[2] = {1, 9};
    pe = part(img)->partition_epoch;
    cr_assert_eq(alter(img, le, pe, noleader, 2, NULL), -RN_E_INVALID_REQUEST);
    cr_assert_eq(alter(img, le, pe, dup, 2, NULL), -RN_E_INVALID_REQUEST);
    cr_assert_eq(alter(img, le, pe, stranger, 2, NULL), -RN_E_INVALID_REQUEST);
    cr_assert_eq(alter(img, le, pe, all, 0, NULL), -RN_E_INVALID_REQUEST);
    isr_is(img, all, 3);
    /* KIP-841: a fenced broker is not added to the ISR. */
    cr_assert_eq(alter(img, le, part(img)->partition_epoch, shrink, 2, NULL), 0);
    cr_assert_eq(fence(img, 2, true), 0);
    pe = part(img)->partition_epoch;
    cr_assert_eq(alter(img, le, pe, all, 3, NULL), -RN_E_INVALID_REQUEST);
    cr_assert_eq(fence(img, 2, false), 0);
    pe = part(img)->partition_epoch;
    cr_assert_eq(alter(img, le, pe, all, 3, NULL), 0, "live again: it may rejoin");
    /* A deposed leader's late proposal changes nothing. */
    cr_assert_eq(fence(img, 1, true), 0);
    cr_assert_eq(alter(img, le, pe, shrink, 2, NULL), -RN_E_FENCED_LEADER_EPOCH);
    rn_image_free(img);
}

static int rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

Test(elections, snapshot_keeps_brokers_and_epochs)
{
    rn_image *img = cluster3();
    cr_assert_eq(fence(img, 1, true), 0);
    cr_assert_eq(fence(img, 3, true), 0);
    char dir[] = "/tmp/rn_elect_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(rn_snapshot_write(img, 42, dir), 0);
    rn_image *back;
    cr_assert_eq(rn_image_new(&back), 0);
    int64_t off = -1;
    char why[256] = "";
    cr_assert_eq(rn_snapshot_load(back, dir, &off, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(off, 42);
    cr_assert(rn_image_equal(img, back), "the loaded image differs (an election replayed?)");
    nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
    rn_image_free(back);
    rn_image_free(img);
}

static int elect(rn_image *img, int32_t le, int32_t pe, const int32_t *isr, size_t n,
                 int32_t leader)
{
    Runnel__Metadata__PartitionChangeRecord cr = RUNNEL__METADATA__PARTITION_CHANGE_RECORD__INIT;
    cr.topic_id = (ProtobufCBinaryData){16, tid};
    cr.partition = 0;
    cr.leader_epoch = le;
    cr.partition_epoch = pe;
    cr.n_isr = n;
    cr.isr = (int32_t *)isr;
    cr.elect = true;
    cr.leader = leader;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_CHANGE;
    r.partition_change = &cr;
    return apply(img, &r, NULL);
}

Test(elections, preferred_leader_returns_once_in_sync)
{
    rn_image *img = cluster3();
    cr_assert_eq(rn_placement_preferred(img, part(img)), -1, "already led by its preferred");
    cr_assert_eq(fence(img, 1, true), 0); /* 2 leads, ISR {2,3} */
    cr_assert_eq(rn_placement_preferred(img, part(img)), -1, "1 is fenced");
    cr_assert_eq(fence(img, 1, false), 0);
    cr_assert_eq(part(img)->leader, 2, "coming back does not take leadership");
    cr_assert_eq(rn_placement_preferred(img, part(img)), -1, "1 is not in the ISR yet");
    const rn_partition_info *p = part(img);
    int32_t le = p->leader_epoch, pe = p->partition_epoch;
    /* Electing 1 while it is outside the ISR is refused. */
    int32_t isr23[2] = {2, 3};
    cr_assert_eq(elect(img, le, pe, isr23, 2, 1), -RN_E_INVALID_REQUEST);
    int32_t all[3] = {2, 3, 1};
    cr_assert_eq(alter(img, le, pe, all, 3, NULL), 0); /* 2 says 1 caught up */
    cr_assert_eq(rn_placement_preferred(img, part(img)), 1);
    p = part(img);
    cr_assert_eq(elect(img, p->leader_epoch, p->partition_epoch, p->isr, (size_t)p->n_isr, 1), 0);
    p = part(img);
    cr_assert_eq(p->leader, 1);
    cr_assert_eq(p->leader_epoch, le + 1);
    cr_assert_eq(rn_placement_preferred(img, p), -1);
    /* A fenced broker is never elected, even by a record that names it. */
    cr_assert_eq(fence(img, 3, true), 0);
    p = part(img);
    cr_assert_eq(elect(img, p->leader_epoch, p->partition_epoch, p->isr, (size_t)p->n_isr, 3),
                 -RN_E_INVALID_REQUEST);
    rn_image_free(img);
}

static int64_t throttle; /* the next reassign's throttle_rate */

static int reassign(rn_image *img, int32_t pe, const int32_t *target, size_t n)
{
    Runnel__Metadata__PartitionReassignRecord rr =
        RUNNEL__METADATA__PARTITION_REASSIGN_RECORD__INIT;
    rr.topic_id = (ProtobufCBinaryData){16, tid};
    rr.partition = 0;
    rr.partition_epoch = pe;
    rr.n_target_replicas = n;
    rr.target_replicas = (int32_t *)target;
    rr.throttle_rate = throttle;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_REASSIGN;
    r.partition_reassign = &rr;
    return apply(img, &r, NULL);
}

static void list_is(const int32_t *got, int32_t n, const int32_t *want, int32_t wn,
                    const char *what)
{
    cr_assert_eq(n, wn, "%s: %d members, want %d", what, n, wn);
    for (int32_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s[%d] = %d, want %d", what, i, got[i], want[i]);
}

Test(reassign, move_completes_once_the_target_is_in_sync)
{
    rn_image *img = cluster3();
    cr_assert_eq(broker_rec(img, 4, 104, false), 0);
    const rn_partition_info *p = part(img);
    int32_t pe = p->partition_epoch, le = p->leader_epoch;
    /* Drain broker 1 (the leader) onto 4. */
    int32_t target[3] = {2, 3, 4};
    cr_assert_eq(reassign(img, pe, target, 3), 0);
    p = part(img);
    int32_t all[4] = {2, 3, 4, 1}, isr0[3] = {1, 2, 3};
    list_is(p->replicas, p->n_replicas, all, 4, "replicas during the move");
    list_is(p->target, p->n_target, target, 3, "target");
    list_is(p->isr, p->n_isr, isr0, 3, "isr during the move");
    cr_assert_eq(p->leader, 1, "the leader stays until the move completes");
    cr_assert_eq(p->partition_epoch, pe + 1);
    /* A stale move is refused. */
    cr_assert_eq(reassign(img, pe, target, 3), -RN_E_FENCED_LEADER_EPOCH);
    /* 4 catches up: the leader's ISR change completes the move. */
    int32_t isr4[4] = {1, 2, 3, 4};
    cr_assert_eq(alter(img, le, p->partition_epoch, isr4, 4, NULL), 0);
    p = part(img);
    int32_t isr_after[3] = {2, 3, 4};
    list_is(p->replicas, p->n_replicas, target, 3, "replicas after");
    list_is(p->isr, p->n_isr, isr_after, 3, "isr after");
    cr_assert_eq(p->n_target, 0);
    cr_assert_eq(p->leader, 2, "the leaving leader hands over to an in-sync target replica");
    cr_assert_eq(p->leader_epoch, le + 1);
    /* Elections and ISR changes still work in the shrunk block. */
    cr_assert_eq(fence(img, 2, true), 0);
    int32_t isr34[2] = {3, 4};
    list_is(part(img)->isr, part(img)->n_isr, isr34, 2, "isr after a fence");
    cr_assert_eq(part(img)->leader, 3);
    rn_image_free(img);
}

Test(reassign, already_in_sync_target_completes_at_once_and_same_set_reorders)
{
    rn_image *img = cluster3();
    int32_t shrink[2] = {3, 2};
    cr_assert_eq(reassign(img, part(img)->partition_epoch, shrink, 2), 0);
    const rn_partition_info *p = part(img);
    list_is(p->replicas, p->n_replicas, shrink, 2, "replicas");
    cr_assert_eq(p->n_target, 0);
    cr_assert_eq(p->leader, 3, "the first in-sync target replica leads");
    int32_t order[2] = {2, 3};
    cr_assert_eq(reassign(img, p->partition_epoch, order, 2), 0);
    p = part(img);
    list_is(p->replicas, p->n_replicas, order, 2, "reordered");
    cr_assert_eq(p->n_target, 0, "the same brokers: nothing to move");
    cr_assert_eq(rn_placement_preferred(img, p), 2, "the new first replica is preferred");
    rn_image_free(img);
}

/* A move that only adds a replica (RF 2 -> 3) is a move like any other:
 * under way, the new replica shown as adding, until it is in sync (it was
 * taken for "the same brokers" and finished at once, so no throttle ever
 * applied to it). Its throttle lives as long as the move. */
Test(reassign, adding_only_is_a_move_and_its_throttle_ends_with_it)
{
    rn_image *img = cluster3();
    int32_t shrink[2] = {1, 2};
    cr_assert_eq(reassign(img, part(img)->partition_epoch, shrink, 2), 0);
    const rn_partition_info *p = part(img);
    cr_assert_eq(p->n_target, 0);
    cr_assert_eq(p->throttle, 0);
    int32_t grow[3] = {1, 2, 3}, isr12[2] = {1, 2};
    throttle = 20 << 20;
    cr_assert_eq(reassign(img, p->partition_epoch, grow, 3), 0);
    throttle = 0;
    p = part(img);
    list_is(p->replicas, p->n_replicas, grow, 3, "replicas during the move");
    list_is(p->target, p->n_target, grow, 3, "target: the move is under way");
    list_is(p->isr, p->n_isr, isr12, 2, "isr during the move");
    cr_assert_eq(p->throttle, 20 << 20, "the move's throttle");
    cr_assert_eq(alter(img, p->leader_epoch, p->partition_epoch, grow, 3, NULL), 0);
    p = part(img);
    cr_assert_eq(p->n_target, 0, "3 in sync: done");
    cr_assert_eq(p->throttle, 0, "the throttle ends with the move");
    list_is(p->replicas, p->n_replicas, grow, 3, "replicas after");
    rn_image_free(img);
}

Test(reassign, refuses_bad_targets)
{
    rn_image *img = cluster3();
    int32_t pe = part(img)->partition_epoch;
    int32_t unknown[2] = {1, 9}, dup[2] = {2, 2};
    cr_assert_eq(reassign(img, pe, unknown, 2), -RN_E_INVALID_REQUEST);
    cr_assert_eq(reassign(img, pe, dup, 2), -RN_E_INVALID_REQUEST);
    cr_assert_eq(reassign(img, pe, dup, 0), -RN_E_INVALID_REQUEST);
    cr_assert_eq(part(img)->partition_epoch, pe, "refused moves change nothing");
    rn_image_free(img);
}

Test(reassign, snapshot_keeps_a_move_in_progress)
{
    rn_image *img = cluster3();
    cr_assert_eq(broker_rec(img, 4, 104, false), 0);
    int32_t target[3] = {4, 2, 3};
    throttle = 12345;
    cr_assert_eq(reassign(img, part(img)->partition_epoch, target, 3), 0);
    throttle = 0;
    cr_assert_eq(part(img)->throttle, 12345);
    char dir[] = "/tmp/rn_move_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(rn_snapshot_write(img, 7, dir), 0);
    rn_image *back;
    cr_assert_eq(rn_image_new(&back), 0);
    int64_t off = -1;
    char why[256] = "";
    cr_assert_eq(rn_snapshot_load(back, dir, &off, why, sizeof(why)), 0, "%s", why);
    cr_assert(rn_image_equal(img, back));
    cr_assert_eq(part(back)->throttle, 12345, "the snapshot keeps the move's throttle");
    nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
    rn_image_free(back);
    rn_image_free(img);
}

/* ---- Eligible leader replicas (KIP-966) ---- */

/* cluster3() with the partition recorded at min.insync.replicas = min_isr. */
static rn_image *cluster3_min(int32_t min_isr)
{
    rn_image *img;
    cr_assert_eq(rn_image_new(&img), 0);
    for (int32_t id = 1; id <= 3; id++)
        cr_assert_eq(broker_rec(img, id, 100 + id, false), 0);
    Runnel__Metadata__TopicRecord tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
    tr.name = "t";
    tr.topic_id = (ProtobufCBinaryData){16, tid};
    tr.partitions = 1;
    tr.replication_factor = 3;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC;
    r.topic = &tr;
    cr_assert_eq(apply(img, &r, NULL), 0);
    int32_t reps[3] = {1, 2, 3};
    Runnel__Metadata__PartitionRecord pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
    pr.topic_id = tr.topic_id;
    pr.n_replicas = pr.n_isr = 3;
    pr.replicas = pr.isr = reps;
    pr.leader = 1;
    pr.min_isr = min_isr;
    md_record rp = RUNNEL__METADATA__METADATA_RECORD__INIT;
    rp.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
    rp.partition = &pr;
    cr_assert_eq(apply(img, &rp, NULL), 0);
    return img;
}

static void elr_is(rn_image *img, const int32_t *want, int n)
{
    const rn_partition_info *p = part(img);
    cr_assert_eq(p->n_elr, n, "ELR has %d members, want %d", p->n_elr, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(p->elr[i], want[i], "ELR[%d] is %d, want %d", i, p->elr[i], want[i]);
}

Test(elr, a_replica_leaving_below_min_isr_is_elected_when_no_isr_member_is_live)
{
    rn_image *img = cluster3_min(2);
    cr_assert_eq(part(img)->min_isr, 2);
    cr_assert_eq(fence(img, 3, true), 0); /* ISR {1,2}: still min_isr, 3 is not eligible */
    elr_is(img, NULL, 0);
    cr_assert_eq(fence(img, 2, true), 0); /* ISR {1} < 2: the high watermark stops, 2 is eligible */
    int32_t one[1] = {1}, two[1] = {2};
    isr_is(img, one, 1);
    elr_is(img, two, 1);
    /* The leader goes too: it stays the last ISR member, nobody live is eligible. */
    int32_t le = part(img)->leader_epoch;
    cr_assert_eq(fence(img, 1, true), 0);
    cr_assert_eq(part(img)->leader, -1);
    /* 3 comes back: it left while the ISR was at min_isr, so it may miss
     * acknowledged records: never elected. */
    cr_assert_eq(fence(img, 3, false), 0);
    cr_assert_eq(part(img)->leader, -1, "3 is neither in the ISR nor eligible");
    /* 2 comes back (not restarted): eligible, so it leads; 1 (gone, but
     * holding everything below the high watermark) takes its ELR place. */
    cr_assert_eq(fence(img, 2, false), 0);
    cr_assert_eq(part(img)->leader, 2);
    cr_assert(part(img)->leader_epoch > le);
    isr_is(img, two, 1);
    elr_is(img, one, 1);
    /* The leader's ISR growing back to min_isr empties the ELR. */
    int32_t two_three[2] = {2, 3};
    cr_assert_eq(alter(img, part(img)->leader_epoch, part(img)->partition_epoch, two_three, 2, NULL),
                 0);
    elr_is(img, NULL, 0);
    rn_image_free(img);
}

Test(elr, without_min_isr_above_one_nothing_is_eligible)
{
    rn_image *img = cluster3_min(1);
    cr_assert_eq(fence(img, 3, true), 0);
    cr_assert_eq(fence(img, 2, true), 0);
    elr_is(img, NULL, 0);
    cr_assert_eq(fence(img, 1, true), 0);
    cr_assert_eq(fence(img, 2, false), 0);
    cr_assert_eq(part(img)->leader, -1, "min.insync.replicas=1: 2 may miss acknowledged records");
    rn_image_free(img);
}

Test(elr, a_restart_makes_a_replica_ineligible)
{
    rn_image *img = cluster3_min(2);
    cr_assert_eq(fence(img, 3, true), 0);
    cr_assert_eq(fence(img, 2, true), 0);
    int32_t two[1] = {2};
    elr_is(img, two, 1);
    /* A new incarnation of 2 may have lost unsynced writes. */
    cr_assert_eq(broker_rec(img, 2, 555, true), 0);
    elr_is(img, NULL, 0);
    cr_assert_eq(fence(img, 1, true), 0);
    cr_assert_eq(fence(img, 2, false), 0);
    cr_assert_eq(part(img)->leader, -1, "restarted: not eligible any more");
    rn_image_free(img);
}

Test(elr, leader_proposals_and_configs_move_the_elr)
{
    rn_image *img = cluster3_min(2);
    /* The leader drops 2 and 3 (lagging): ISR {1} < 2, both eligible. */
    int32_t one[1] = {1}, all[3] = {1, 2, 3};
    cr_assert_eq(alter(img, part(img)->leader_epoch, part(img)->partition_epoch, one, 1, NULL), 0);
    int32_t two_three[2] = {2, 3};
    elr_is(img, two_three, 2);
    /* One rejoins: the ISR {1,2} is at min_isr again, the ELR empties. */
    int32_t one_two[2] = {1, 2};
    cr_assert_eq(alter(img, part(img)->leader_epoch, part(img)->partition_epoch, one_two, 2, NULL),
                 0);
    elr_is(img, NULL, 0);
    /* min.insync.replicas raised on the topic: the ISR {1,2} is now below
     * it; a member leaving from here joins the ELR. */
    Runnel__Metadata__ConfigRecord cr = RUNNEL__METADATA__CONFIG_RECORD__INIT;
    cr.topic_id = (ProtobufCBinaryData){16, tid};
    cr.key = "min.insync.replicas";
    cr.value = "3";
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_CONFIG;
    r.config = &cr;
    cr_assert_eq(apply(img, &r, NULL), 0);
    cr_assert_eq(part(img)->min_isr, 3);
    cr_assert_eq(alter(img, part(img)->leader_epoch, part(img)->partition_epoch, one, 1, NULL), 0);
    int32_t two[1] = {2};
    elr_is(img, two, 1);
    cr_assert_eq(alter(img, part(img)->leader_epoch, part(img)->partition_epoch, all, 3, NULL), 0);
    elr_is(img, NULL, 0);
    rn_image_free(img);
}

Test(elr, snapshot_keeps_the_elr_and_min_isr)
{
    rn_image *img = cluster3_min(2);
    cr_assert_eq(fence(img, 3, true), 0);
    cr_assert_eq(fence(img, 2, true), 0);
    cr_assert_eq(fence(img, 1, true), 0);
    char dir[] = "/tmp/rn_elr_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(rn_snapshot_write(img, 7, dir), 0);
    rn_image *back;
    cr_assert_eq(rn_image_new(&back), 0);
    int64_t off = -1;
    char why[256] = "";
    cr_assert_eq(rn_snapshot_load(back, dir, &off, why, sizeof(why)), 0, "%s", why);
    cr_assert(rn_image_equal(img, back), "the loaded image differs");
    /* And it elects the same way after the load. */
    cr_assert_eq(fence(back, 2, false), 0);
    cr_assert_eq(part(back)->leader, 2);
    nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
    rn_image_free(back);
    rn_image_free(img);
}
