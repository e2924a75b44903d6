/*
 * metadata_int.h — what the files of the metadata state machine share, and
 * nothing else includes (metadata.h is the API):
 *
 *     metadata.c           the facade: apply, snapshots, open, replay and
 *                          close, the changes in flight (their life, the
 *                          encoder, submit and commit), look-ups
 *     topic_changes.c      the topic-level mutators (create, delete, alter
 *                          configs, add partitions), their checks, the
 *                          partition caps
 *     partition_changes.c  the partition-level mutators: an ISR change, a
 *                          leader election, a replica move
 *
 * Every mutator validates against the image and the changes in flight,
 * encodes records and submits them the same way (metadata.c's design block,
 * invariant 3); these were static in metadata.c before it was split. The
 * metadata's thread only, as metadata.h says.
 */
#ifndef RN_BROKER_META_METADATA_INT_H
#define RN_BROKER_META_METADATA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/meta/image.h"
#include "broker/meta/journal.h"
#include "broker/meta/metadata.h"
#include "broker/meta/records.h"
#include "storage/io.h"

enum change_kind { CHANGE_CREATE, CHANGE_DELETE, CHANGE_ALTER, CHANGE_GROW };

/* One change between its mutator and its callback. */
typedef struct change {
    rn_metadata *md;
    enum change_kind kind;
    char *name;           /* CREATE: the name it takes */
    int32_t n_partitions; /* CREATE, GROW: partitions it adds (for the caps) */
    int32_t target;       /* GROW: the topic's new partition count */
    uint8_t id[16];       /* the topic it creates, deletes or alters */
    rn_metadata_cb cb;
    void *arg;
    struct change *prev, *next;
} change;

struct rn_metadata {
    rn_io *io;
    rn_journal *journal;
    char *dir; /* data-dir/__cluster_metadata-0 */
    int32_t node_id;
    rn_metadata_listener listener;
    void *listener_arg;

    rn_image *image;

    int64_t applied;         /* offset after the last applied record */
    int64_t snapshot_offset; /* offset the snapshot on disk covers; -1 none */
    uint64_t since_snapshot; /* records applied since it */
    change *pending_head, *pending_tail;
    rn_metadata_limits limits;
    bool limits_set;
    int16_t default_rf; /* default.replication.factor */
    int32_t default_min_isr; /* min.insync.replicas, the broker's (topics may set their own) */
    int failed;         /* invariant 5: sticky */
    /* Invariant 7: the journal is the metadata quorum's (quorum.h). */
    bool cluster;
    /* Cluster, until rn_metadata_caught_up: the log is replayed from its
     * start, and the listener hears only the state it ends in. */
    bool replaying;
    char errmsg[512];
};

/* Packs one change's records for rn_journal_submit: values in one growing
 * buffer, their ends in a second array (pointers are made at submit, once
 * the buffer no longer moves). */
typedef struct encoder {
    uint8_t *buf;
    size_t len, cap;
    size_t *ends;
    size_t n, cap_ends;
} encoder;

/* ---- Changes (metadata.c) --------------------------------------------------------- */

/* A change of kind to topic id (NULL: filled in later), for cb; NULL when
 * out of memory. The caller owns it until rn__metadata_submit. */
change *rn__metadata_change_new(enum change_kind kind, const uint8_t *id, rn_metadata_cb cb,
                                void *arg);
/* Free c and the name it holds; for a mutator that gives up on a change
 * before rn__metadata_submit takes it (which frees its own). */
void rn__metadata_change_free(change *c);
void rn__metadata_enc_init(encoder *e);
/* Append r's packed bytes to e. 0 or -ENOMEM. */
int rn__metadata_enc_add(encoder *e, const md_record *r);
/* Submit e's records as change c unless enc_rc < 0; takes ownership of c
 * (freed on error) and finishes e. 0 or the error, err set. */
int rn__metadata_submit(rn_metadata *md, encoder *e, change *c, int enc_rc, const char *topic_name,
                        char *err, size_t errlen);
/* The sticky failure (invariant 5) as an error, err set; else 0. */
int rn__metadata_check_failed(const rn_metadata *md, char *err, size_t errlen);

/* ---- Topics (topic_changes.c) ----------------------------------------------------- */

/* The live topic a change names into *t: 0, or the error with err set. */
int rn__metadata_check_target(const rn_metadata *md, const char *name, const rn_topic_info **t,
                              char *err, size_t errlen);
/* The topic's min.insync.replicas, else the broker's: what the image
 * records with each partition. */
int32_t rn__metadata_topic_min_isr(const rn_metadata *md, const rn_topic_info *t);

#endif
