/*
 * quorum_store.c — what the metadata quorum keeps on disk besides its
 * snapshots (see quorum_int.h for the other files of the quorum): the
 * quorum-state file and the metadata log. Quorum thread only.
 *
 * quorum-state is one line of text, "epoch=E voted_for=V leader=L\n",
 * replaced durably (tmp, fsync, rename, fsync dir: quorum.c's invariant 1).
 *
 * On disk each entry is one record batch of one record whose value is
 * u8 raft kind | entry bytes, at the entry's offset, its epoch stamped, and
 * no timestamp: every voter's copy of the log is byte-identical. The log is
 * opened with flush=always, so an append returns once the entry is durable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/quorum.h"
#include "broker/meta/quorum_int.h"
#include "broker/meta/raft.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/log.h"
#include "storage/sys.h"

int rn__quorum_state_write(rn_quorum *q, const rn_raft_quorum_state *s)
{
    char path[4200], tmp[4210], text[96];
    if (snprintf(path, sizeof(path), "%s/quorum-state", q->dir) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int n = snprintf(text, sizeof(text), "epoch=%d voted_for=%d leader=%d\n", s->epoch,
                     s->voted_for, s->leader_id);
    return rn_sys_replace_file(tmp, path, q->dir, text, (size_t)n, 0);
}

/* 0 and *s (epoch 0, nobody, when there is no file), or -RN_E_CORRUPT_FILE. */
int rn__quorum_state_read(rn_quorum *q, rn_raft_quorum_state *s)
{
    char path[4200], text[128] = "";
    snprintf(path, sizeof(path), "%s/quorum-state", q->dir);
    *s = (rn_raft_quorum_state){0, RN_RAFT_NONE, RN_RAFT_NONE};
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = 0;
    if (sscanf(text, "epoch=%d voted_for=%d leader=%d", &s->epoch, &s->voted_for, &s->leader_id) !=
            3 ||
        s->epoch < 0)
        return -RN_E_CORRUPT_FILE;
    return 0;
}

int rn__quorum_log_append(rn_quorum *q, const rn_raft_entry *e)
{
    buf v = {0};
    put_u8(&v, e->kind);
    buf_put(&v, e->data, e->len);
    if (v.oom)
        return -ENOMEM;
    rn_batch_builder *b;
    int rc = rn_batch_builder_new(&b, NULL);
    if (rc < 0) {
        free(v.p);
        return rc;
    }
    /* No timestamp: the entry's bytes alone decide the batch's, so every
     * voter's copy of the metadata log is byte-identical (a local clock
     * made each voter's batches, and their CRCs, differ). */
    rc = rn_batch_builder_add(b, -1, NULL, 0, v.p, v.len, NULL, 0);
    uint8_t *batch = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = rn_batch_builder_finish(b, &batch, &len);
    rn_batch_builder_free(b);
    free(v.p);
    if (rc < 0)
        return rc;
    int64_t base;
    rc = rn_log_append_sync(q->log, batch, len, e->epoch, &base);
    free(batch);
    if (rc == 0 && base != e->offset)
        rc = -EIO; /* the log and the core disagree: never go on */
    return rc;
}

/* Read the log back from `from` (>= its start) as entries (data copied). */
int rn__quorum_log_load(rn_quorum *q, int64_t from, loaded *out)
{
    int64_t end = rn_log_end_offset(q->log), next = from;
    while (next < end) {
        rn_slice s;
        int rc = rn_log_read(q->log, next, 1u << 20, end, &s);
        if (rc < 0)
            return rc;
        if (s.len == 0) {
            rn_slice_release(&s);
            break;
        }
        size_t pos = 0;
        while (pos < s.len) {
            rn_batch_header h;
            rc = rn_batch_peek(s.data + pos, s.len - pos, 0, &h);
            if (rc == 0 && rn_batch_size(&h) > s.len - pos)
                rc = -RN_E_BATCH_TRUNCATED;
            rn_batch_iter it;
            if (rc == 0)
                rc = rn_batch_iter_init(&it, s.data + pos, rn_batch_size(&h), 0);
            if (rc < 0) {
                rn_slice_release(&s);
                return -RN_E_CORRUPT_FILE;
            }
            rn_record rec;
            while ((rc = rn_batch_iter_next(&it, &rec)) == 1) {
                if (rec.offset < next)
                    continue;
                if (rec.value_len < 1 || rec.offset != next) {
                    rc = -RN_E_CORRUPT_FILE;
                    break;
                }
                if (out->n == out->cap) {
                    int64_t cap = out->cap ? out->cap * 2 : 64;
                    rn_raft_entry *ne = realloc(out->e, (size_t)cap * sizeof(*ne));
                    if (!ne) {
                        rc = -ENOMEM;
                        break;
                    }
                    out->e = ne;
                    out->cap = cap;
                }
                uint8_t *d = malloc((size_t)rec.value_len);
                if (!d) {
                    rc = -ENOMEM;
                    break;
                }
                memcpy(d, rec.value + 1, (size_t)rec.value_len - 1);
                out->e[out->n++] = (rn_raft_entry){.offset = rec.offset,
                                                   .epoch = h.partition_leader_epoch,
                                                   .kind = rec.value[0],
                                                   .len = (uint32_t)rec.value_len - 1,
                                                   .data = d};
                next = rec.offset + 1;
            }
            rn_batch_iter_fini(&it);
            if (rc < 0) {
                rn_slice_release(&s);
                return rc == -ENOMEM ? rc : -RN_E_CORRUPT_FILE;
            }
            pos += rn_batch_size(&h);
        }
        rn_slice_release(&s);
    }
    return 0;
}
