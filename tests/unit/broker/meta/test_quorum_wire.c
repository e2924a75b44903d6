/*
 * test_quorum_wire.c — the metadata quorum's wire form of a Raft message
 * (broker/meta/quorum.c): every field round-trips, and bytes that are not
 * exactly one message are refused before anything is allocated for them.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/quorum.h"
#include "broker/meta/raft.h"

static rn_raft_msg sample(rn_raft_entry *ents)
{
    static const uint8_t d0[] = "first", d1[] = "";
    ents[0] = (rn_raft_entry){.offset = 41, .epoch = 3, .kind = 1, .len = 5, .data = d0};
    ents[1] = (rn_raft_entry){.offset = 42, .epoch = 4, .kind = 0, .len = 0, .data = d1};
    rn_raft_msg m = {
        .type = RN_RAFT_MSG_FETCH_RESP,
        .error = RN_RAFT_ERR_NOT_LEADER,
        .from = 2,
        .to = 3,
        .epoch = 4,
        .leader_id = 2,
        .pre_vote = true,
        .granted = true,
        .candidate_epoch = 5,
        .last_offset = 1LL << 40,
        .last_epoch = 3,
        .fetch_offset = 41,
        .last_fetched_epoch = 3,
        .hw = 40,
        .log_start = 7,
        .diverging_epoch = -1,
        .diverging_end_offset = -1,
        .snapshot_end_offset = -1,
        .snapshot_epoch = 9,
        .entries = ents,
        .n_entries = 2,
        .snapshot_data = (const uint8_t *)"snap",
        .snapshot_len = 4,
        .preferred = {3, 1},
        .n_preferred = 2,
    };
    return m;
}

Test(quorum_wire, round_trip)
{
    rn_raft_entry ents[2];
    rn_raft_msg m = sample(ents), out;
    uint8_t *w;
    size_t len;
    cr_assert_eq(rn_quorum_msg_encode(&m, &w, &len), 0);
    rn_raft_entry *got;
    cr_assert_eq(rn_quorum_msg_decode(w, len, &out, &got), 0);
    cr_assert_eq(out.type, m.type);
    cr_assert_eq(out.error, m.error);
    cr_assert_eq(out.from, 2);
    cr_assert_eq(out.to, 3);
    cr_assert_eq(out.epoch, 4);
    cr_assert_eq(out.leader_id, 2);
    cr_assert(out.pre_vote && out.granted);
    cr_assert_eq(out.candidate_epoch, 5);
    cr_assert_eq(out.last_offset, 1LL << 40);
    cr_assert_eq(out.fetch_offset, 41);
    cr_assert_eq(out.hw, 40);
    cr_assert_eq(out.log_start, 7);
    cr_assert_eq(out.diverging_epoch, -1);
    cr_assert_eq(out.diverging_end_offset, -1);
    cr_assert_eq(out.snapshot_end_offset, -1);
    cr_assert_eq(out.snapshot_epoch, 9);
    cr_assert_eq(out.n_preferred, 2);
    cr_assert_eq(out.preferred[0], 3);
    cr_assert_eq(out.preferred[1], 1);
    cr_assert_eq(out.n_entries, 2);
    cr_assert_eq(out.entries[0].offset, 41);
    cr_assert_eq(out.entries[0].epoch, 3);
    cr_assert_eq(out.entries[0].kind, 1);
    cr_assert_eq(out.entries[0].len, 5);
    cr_assert_eq(memcmp(out.entries[0].data, "first", 5), 0);
    cr_assert_eq(out.entries[1].len, 0);
    cr_assert_eq(out.snapshot_len, 4);
    cr_assert_eq(memcmp(out.snapshot_data, "snap", 4), 0);
    free(got);
    free(w);
}

// Every proper prefix, and one byte too many, is refused.
Test(quorum_wire, truncated_and_trailing_refused)
{
    rn_raft_entry ents[2];
    rn_raft_msg m = sample(ents), out;
    uint8_t *w;
    size_t len;
    cr_assert_eq(rn_quorum_msg_encode(&m, &w, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        rn_raft_entry *got = NULL;
        cr_assert_eq(rn_quorum_msg_decode(w, cut, &out, &got), -EINVAL, "prefix %zu accepted", cut);
        cr_assert_null(got);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, w, len);
    longer[len] = 0;
    rn_raft_entry *got = NULL;
    cr_assert_eq(rn_quorum_msg_decode(longer, len + 1, &out, &got), -EINVAL);
    free(longer);
    free(w);
}

// Counts the bytes cannot hold are refused before any allocation: a
// message claiming 2^32-1 entries, or more preferred voters than exist.
Test(quorum_wire, counts_bounded)
{
    rn_raft_msg m = {.type = RN_RAFT_MSG_FETCH_REQ, .from = 1, .to = 2};
    uint8_t *w;
    size_t len;
    cr_assert_eq(rn_quorum_msg_encode(&m, &w, &len), 0);
    /* Layout: ... | u32 n_preferred | u32 n_entries | u32 snapshot_len. */
    size_t n_pref_at = len - 12, n_ent_at = len - 8;
    rn_raft_entry *got = NULL;
    rn_raft_msg out;
    memset(w + n_ent_at, 0xff, 4);
    cr_assert_eq(rn_quorum_msg_decode(w, len, &out, &got), -EINVAL);
    cr_assert_null(got);
    memset(w + n_ent_at, 0, 4);
    w[n_pref_at] = RN_RAFT_MAX_VOTERS + 1;
    cr_assert_eq(rn_quorum_msg_decode(w, len, &out, &got), -EINVAL);
    w[n_pref_at] = 0;
    cr_assert_eq(rn_quorum_msg_decode(w, len, &out, &got), 0);
    free(got);
    free(w);
}

TestSuite(quorum_wire, .timeout = 30);
