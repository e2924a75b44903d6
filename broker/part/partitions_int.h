/*
 * partitions_int.h — what the three files of the partition table share, and
 * nothing else includes (partitions.h is the API):
 *
 *     partitions.c   the table and its look-ups, the high-watermark rule,
 *                    replication roles and the acks rule, whose directory
 *                    (partition.metadata, moving aside, removing), the
 *                    changes sent to the other reactors' tables, shutdown
 *     part_events.c  the metadata events: topics and partitions opened,
 *                    reconfigured, grown, closed and deleted (reactor 0, or
 *                    the main thread at start-up), replicas opened and
 *                    stopped on their owner
 *     sweep.c        the start-up sweep of leftover directories, storage
 *                    errors, and the tick's walk over a reactor's partitions
 *
 * These were static in partitions.c before it was split; each is used by
 * more than one of the files. Thread rules as before: the table functions on
 * the thread whose table it is, a partition's on its owner.
 */
#ifndef RN_BROKER_PART_PARTITIONS_INT_H
#define RN_BROKER_PART_PARTITIONS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/meta/metadata.h"
#include "broker/part/partitions.h"
#include "storage/log.h"

/* A directory moved aside is <dir><DELETED_MARK><ms>-<seq> (partitions.c's
 * design block, 3). */
#define DELETED_MARK RN_DELETED_DIR_MARK

/* ---- The table (partitions.c) ----------------------------------------------------------- */

/* Where name is in pt (sorted by name), or would go; *found says which. */
int rn__partitions_find_index(const rn_partition_table *pt, const char *name, bool *found);
/* Insert ts (the table takes the caller's reference). -EEXIST, -ENOMEM. */
int rn__partitions_table_insert(rn_partition_table *pt, rn_topic_state *ts);
/* Take name's state out of pt: the caller gets the table's reference; NULL
 * when absent. */
rn_topic_state *rn__partitions_table_remove(rn_partition_table *pt, const char *name);
/* Free ts and, unless they moved to a larger state, its partitions (their
 * logs already closed). */
void rn__partitions_free_topic(rn_topic_state *ts);
/* Drop one reference to ts; the last frees it. */
void rn__partitions_topic_unref(rn_topic_state *ts);

/* ---- Whose directory (partitions.c) ------------------------------------------------------ */

/* data-dir/<topic>-<p> into buf. 0 or -ENAMETOOLONG. */
int rn__partitions_dir(char *buf, size_t len, const rn_broker *b, const char *topic, int32_t p);
/* rm -r of one (flat) partition directory, partition.metadata last. 0 or -errno. */
int rn__partitions_remove_dir(const char *dir);
/* Rename dir aside to <dir>.deleted-<ms>-<seq>: the new name (malloc'd, the
 * caller frees it) or NULL with *rc set. */
char *rn__partitions_move_aside(const char *dir, int *rc);
/* Make dir the directory of the topic with this id (partition.metadata);
 * *discarded counts leftovers removed. 0 or -errno. */
int rn__partitions_claim_dir(rn_broker *b, const char *dir, const char *name, const uint8_t id[16],
                             bool adopt_legacy, unsigned *discarded);

/* ---- Changes sent to the other reactors (partitions.c) --------------------------------- */

enum change_kind { CHANGE_ADD, CHANGE_REMOVE, CHANGE_CONFIG, CHANGE_REPLACE };

/* Send a change of ts (and lc, for CHANGE_CONFIG; may be NULL) to every
 * reactor but 0; each message holds a reference to ts. */
void rn__partitions_broadcast(rn_broker *b, enum change_kind kind, rn_topic_state *ts,
                              const rn_log_config *lc);

/* ---- Metadata events (part_events.c), also run by the changes above -------------------- */

/* Close p's log on its owner; remove: delete its directory too. */
void rn__partitions_close_partition(rn_broker *b, rn_partition *p, bool remove);
/* Apply a topic's new log config lc to the partitions r owns. */
void rn__partitions_apply_config(rn_reactor *r, rn_topic_state *ts, const rn_log_config *lc);

/* ---- Storage errors (sweep.c) ----------------------------------------------------------- */

/* Set p's storage error mark to err (0 clears it) and keep the broker's
 * counts (/readyz, /metrics) in step. Owner only. */
void rn__partitions_storage_mark(rn_partition *p, int err);

#endif
