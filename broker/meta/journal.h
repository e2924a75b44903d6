/*
 * journal.h — the metadata journal: records go in, come back once committed
 * (DESIGN §8; Kafka's RaftClient as the controller sees it).
 *
 * rn_journal_submit takes one change's records (packed MetadataRecords),
 * makes them one record batch (so a change commits whole or not at all),
 * hands it to the backend, and calls back once the backend says it is
 * committed, with the batch as committed (offsets stamped) so the caller
 * applies exactly what the log holds. rn_journal_replay reads the
 * committed batches back, for opening.
 *
 * Backends: "committed" is the backend's word. The local backend
 * (rn_journal_open_local) is today's metadata log, __cluster_metadata-0 on
 * this node, an rn_log with flush=always: committed = durable here. A Raft
 * backend (broker/meta/raft.h drives it) will say committed = on a majority;
 * it plugs in through rn_journal_backend without the callers changing.
 * What a Raft backend adds beyond this interface: batches committed that
 * this node did not submit (a follower's) reach the image through the same
 * path as rn_journal_replay's (read from the committed offset), so the
 * facade applies every batch in one order whoever proposed it.
 *
 * Threading: owned by one reactor thread; callbacks run from rn_io_run on
 * it (never inside rn_journal_submit).
 */
#ifndef RN_BROKER_META_JOURNAL_H
#define RN_BROKER_META_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "storage/io.h"
#include "storage/log.h"

typedef struct rn_journal rn_journal;

/* One record's value (a packed MetadataRecord); borrowed during the call. */
typedef struct rn_journal_rec {
    const void *data;
    size_t len;
} rn_journal_rec;

/* A submitted change's end: err 0 with the committed batch (base_offset is
 * its first record's offset; batch lives during the call), or a negative
 * code with errmsg saying why (batch NULL). */
typedef void (*rn_journal_cb)(void *arg, int err, int64_t base_offset, const uint8_t *batch,
                              size_t len, const char *errmsg);

/* What a backend provides. be is its own state. */
typedef struct rn_journal_backend {
    /* Start committing one batch (which it may stamp in place and must leave
     * alive until done). done(arg, err, base_offset) runs once, later, from
     * the owner's event loop. A negative return: not started, done never
     * runs. */
    int (*append)(void *be, void *batch, size_t len,
                  void (*done)(void *arg, int err, int64_t base_offset), void *arg);
    /* Committed batches from offset, below max_offset (rn_log_read's
     * contract). */
    int (*read)(void *be, int64_t offset, size_t max_bytes, int64_t max_offset, rn_slice *out);
    int64_t (*start_offset)(void *be);
    int64_t (*end_offset)(void *be); /* after the last committed record */
    /* Wait for every append started to finish (their done has run). */
    int (*flush)(void *be);
    /* Close and free be; every done has run when it returns. */
    int (*close)(void *be);
    /* Context for the backend's last error ("" when none). */
    const char *(*errmsg)(void *be);
} rn_journal_backend;

/* A journal over ops/be (taken: closed by rn_journal_close). -ENOMEM. */
int rn_journal_new(rn_journal **out, const rn_journal_backend *ops, void *be);

/* The local backend: the rn_log in dir (created if missing) named name,
 * flush=always, no retention. io is borrowed. Errors of rn_log_open, with
 * err saying which. */
int rn_journal_open_local(rn_journal **out, rn_io *io, const char *dir, const char *name, char *err,
                          size_t errlen);

/* Submit one change of n (>= 1) records. 0 and cb runs once, later; or a
 * negative code at once (-EINVAL: no records; -ENOMEM; an encoding error;
 * the backend's append error) with err saying why, and cb never runs. */
int rn_journal_submit(rn_journal *j, const rn_journal_rec *recs, size_t n, rn_journal_cb cb,
                      void *arg, char *err, size_t errlen);

/* Call fn for each committed batch holding offsets at or after from, in
 * order, up to the end. A batch may begin below from (the caller skips its
 * records below it). *reached gets the offset after the last record read.
 * fn returns 0 or a negative code that stops the replay and is returned.
 * -RN_E_CORRUPT_FILE (err says where) for a batch that does not parse; a
 * read error with err saying which. */
typedef int (*rn_journal_replay_fn)(void *arg, const uint8_t *batch, size_t len);
int rn_journal_replay(rn_journal *j, int64_t from, rn_journal_replay_fn fn, void *arg,
                      int64_t *reached, char *err, size_t errlen);

int64_t rn_journal_start_offset(const rn_journal *j);
int64_t rn_journal_end_offset(const rn_journal *j);

/* Let every submitted change finish (its callback runs). */
int rn_journal_flush(rn_journal *j);

/* Flush, close the backend, free. Returns the first error. */
int rn_journal_close(rn_journal *j);

#endif
