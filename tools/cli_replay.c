/*
 * cli_replay.c — `runnel replay DATA_DIR TOPIC`: records straight from segment
 * files, offline and read-only, for jq, DuckDB and pandas.
 *
 * How it fits: no broker and no librunnel connection; it reads the layout of
 * DESIGN §4 (DATA_DIR/<topic>-<partition>/<20-digit base offset>.log) with the
 * batch codec of protocol/batch.h, and prints through cli_output.c, so
 * `replay --format ndjson` prints what `consume -J` prints for the same
 * records. storage/log.h is not used: it opens a log to write (recovery,
 * truncation, clean markers), and replay must never change a byte. The
 * partition directory is read with storage/log_dir.h, the read-only half
 * the log's own open shares: the same list of segments, and a walk that is
 * safe while a broker writes (the point of "offline, safe"):
 *   - Each .log is read with pread up to its size when opened, never mapped:
 *     a file cut under us (a seal, recovery) cannot fault, it just ends. The
 *     active segment is sparse-preallocated, so its tail is zeros: an
 *     all-zero header is the end of the data, not an error.
 *   - A batch is copied into a private buffer, then checked (length,
 *     CRC-32C) and decoded from the copy: the broker can append, seal or,
 *     after a crash, cut and rewrite a tail under us, and we still decode
 *     only bytes that verified together.
 *   - The walk of a partition stops at the first incomplete or bad batch
 *     (what recovery would cut), with one note on stderr for a bad one.
 *
 * Ranges are half-open, like consume's -o s@/e@: --from N|@MS starts at offset
 * N (or the first record with timestamp >= MS, then everything after it);
 * --to N|@MS stops before offset N (or at the first record with timestamp >=
 * MS). Partitions print one after another in ascending order; offsets ascend
 * within each. Control batches (transaction markers) hold no data: skipped.
 *
 * Batches are reached by hopping headers from the start of the first segment
 * that can hold --from (segment names give base offsets): a header hop is a
 * 61-byte read, and the index files may be mid-rewrite by a live broker. A
 * batch hopped over is checked for magic and length only; the CRC-32C is
 * checked on every batch whose records are printed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "metadata.pb-c.h"
#include "protocol/partition_meta.h"
#include "broker/meta/image.h"
#include "broker/meta/snapshot.h"
#include "storage/log_dir.h"
#include "tools/cli_common.h"

enum { OPT_FROM = 256, OPT_TO, OPT_FORMAT };
enum fmt { F_NDJSON, F_CSV, F_RAW };

/* A bound of --from / --to: an offset or a timestamp. */
typedef struct bound {
    bool set, is_time;
    int64_t v;
} bound;

typedef struct replay {
    const char *dir, *topic;
    bound from, to;
    enum fmt fmt;
    cli_format *raw_fmt;
    int64_t count; /* -1: all */
    uint64_t printed, bytes;
    uint8_t *buf; /* private copy of the current batch */
    size_t buf_cap;
    rn_header *hdrs;
    size_t hdrs_cap;
    cli_progress progress;
    bool out_failed;
} replay;

/* ------------------------------------------------------------------------ */
/* Directories                                                               */
/* ------------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Partitions of topic in dir: the N of every "<topic>-<N>" entry, sorted. */
static int list_partitions(const char *dir, const char *topic, int64_t **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    size_t tl = strlen(topic), cnt = 0, cap = 0;
    int64_t *v = NULL;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl <= tl + 1 || strncmp(e->d_name, topic, tl) || e->d_name[tl] != '-' ||
            !all_digits(e->d_name + tl + 1, nl - tl - 1) || nl - tl - 1 > 9)
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        v[cnt++] = strtoll(e->d_name + tl + 1, NULL, 10);
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (cnt)
        qsort(v, cnt, sizeof(*v), cmp_i64);
    *out = v;
    *n = cnt;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Walking one partition                                                     */
/* ------------------------------------------------------------------------ */

/* What ended the walk of a segment. */
enum seg_end {
    SEG_END,     /* end of data: EOF or the zero tail; go on to the next segment */
    SEG_STOP,    /* --to or -c reached, or output failed: stop everything here */
    SEG_BAD,     /* an incomplete or bad batch: stop this partition */
    SEG_PART_END /* --to reached for this partition */
};

/* Print one record; false when the output failed. */
static bool emit(replay *r, const rn_message *m)
{
    int rc;
    switch (r->fmt) {
    case F_NDJSON:
        rc = cli_write_json(stdout, m);
        break;
    case F_CSV:
        rc = cli_write_csv(stdout, m);
        break;
    default:
        rc = cli_format_write(stdout, r->raw_fmt, m);
        break;
    }
    if (rc < 0)
        return false;
    r->printed++;
    r->bytes += m->key_len + m->value_len;
    cli_progress_update(&r->progress, r->printed, r->bytes);
    return true;
}

/* Decode the batch in r->buf and print the records in range. *skipping_ts is
 * the --from @MS state of the partition. */
static enum seg_end print_batch(replay *r, int32_t partition, size_t len, bool *skipping_ts,
                                int *err)
{
    rn_batch_iter it;
    int rc = rn_batch_iter_init(&it, r->buf, len, 0);
    if (rc < 0) {
        *err = rc;
        return SEG_BAD;
    }
    rn_record rec;
    enum seg_end end = SEG_END;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 1) {
        if (r->from.set && !r->from.is_time && rec.offset < r->from.v)
            continue;
        if (r->to.set && (r->to.is_time ? rec.timestamp >= r->to.v : rec.offset >= r->to.v)) {
            end = SEG_PART_END;
            break;
        }
        if (*skipping_ts) {
            if (rec.timestamp < r->from.v)
                continue;
            *skipping_ts = false;
        }
        /* Headers come encoded; the output wants an rn_header array. */
        size_t nh = 0;
        const uint8_t *hp = rec.headers, *he = rec.headers + rec.headers_len;
        rn_record_header rh;
        int hrc;
        while ((hrc = rn_record_header_next(&hp, he, &rh)) == 1) {
            if (nh == r->hdrs_cap) {
                size_t ncap = r->hdrs_cap ? r->hdrs_cap * 2 : 8;
                rn_header *nv = realloc(r->hdrs, ncap * sizeof(*nv));
                if (!nv) {
                    *err = -ENOMEM;
                    rn_batch_iter_fini(&it);
                    return SEG_STOP;
                }
                r->hdrs = nv;
                r->hdrs_cap = ncap;
            }
            r->hdrs[nh++] = (rn_header){
                .name = (const char *)rh.name,
                .name_len = (size_t)rh.name_len,
                .value = rh.value_len < 0 ? NULL : (rh.value ? (const void *)rh.value : ""),
                .value_len = rh.value_len < 0 ? 0 : (size_t)rh.value_len,
            };
        }
        if (hrc < 0) {
            rc = hrc;
            break;
        }
        rn_message m = {
            .topic = r->topic,
            .partition = partition,
            .offset = rec.offset,
            .timestamp = rec.timestamp,
            .key = rec.key_len < 0 ? NULL : (rec.key ? (const void *)rec.key : ""),
            .key_len = rec.key_len < 0 ? 0 : (size_t)rec.key_len,
            .value = rec.value_len < 0 ? NULL : (rec.value ? (const void *)rec.value : ""),
            .value_len = rec.value_len < 0 ? 0 : (size_t)rec.value_len,
            .n_headers = nh,
            .headers = r->hdrs,
        };
        if (!emit(r, &m)) {
            r->out_failed = true;
            end = SEG_STOP;
            break;
        }
        if (r->count >= 0 && r->printed >= (uint64_t)r->count) {
            end = SEG_STOP;
            break;
        }
    }
    rn_batch_iter_fini(&it);
    if (rc < 0) {
        *err = rc;
        return SEG_BAD;
    }
    return end;
}

/* Walk the batches of one segment from position 0 (storage/log_dir.h).
 * rd->next_offset is the offset expected next in the partition (-1
 * unknown); *bad_pos gets where a bad batch sits. */
static enum seg_end walk_segment(replay *r, int32_t partition, rn_segment_reader *rd,
                                 bool *skipping_ts, int *err, uint64_t *bad_pos)
{
    while (!cli_stop) {
        *bad_pos = rd->pos;
        rn_batch_header h;
        int rc = rn_segment_reader_peek(rd, &h);
        if (rc == 0)
            return SEG_END;
        if (rc < 0) {
            *err = rc;
            return SEG_BAD;
        }
        size_t size = rn_batch_size(&h);
        int64_t last = h.base_offset + h.last_offset_delta;
        if (r->to.set && !r->to.is_time && h.base_offset >= r->to.v)
            return SEG_PART_END;
        bool skip = (r->from.set && !r->from.is_time && last < r->from.v) ||
                    (*skipping_ts && h.max_timestamp < r->from.v) ||
                    (h.attributes & RN_BATCH_ATTR_CONTROL);
        if (!skip) {
            if (size > r->buf_cap) {
                uint8_t *nb = realloc(r->buf, size);
                if (!nb) {
                    *err = -ENOMEM;
                    return SEG_STOP;
                }
                r->buf = nb;
                r->buf_cap = size;
            }
            rc = rn_segment_reader_read(rd, &h, r->buf);
            if (rc < 0) {
                *err = rc;
                return SEG_BAD;
            }
            enum seg_end e = print_batch(r, partition, size, skipping_ts, err);
            if (e != SEG_END)
                return e;
        }
        rn_segment_reader_advance(rd, &h);
    }
    return SEG_STOP;
}

/* Replay one partition. Returns 0, SEG_STOP as 1 (stop everything), or a
 * negative error for the partition's files. */
static int replay_partition(replay *r, int32_t partition)
{
    char pdir[4096];
    if (snprintf(pdir, sizeof(pdir), "%s/%s-%d", r->dir, r->topic, partition) >= (int)sizeof(pdir))
        return -ENAMETOOLONG;
    int64_t *segs = NULL;
    unsigned n_segs = 0;
    int rc = rn_log_dir_list(pdir, &segs, &n_segs, NULL, NULL);
    if (rc < 0) {
        cli_fail(rc, "%s", pdir);
        return rc;
    }
    /* The first segment that can hold --from: the last base offset <= it. */
    size_t first = 0;
    if (r->from.set && !r->from.is_time)
        for (size_t i = 0; i < n_segs; i++)
            if (segs[i] <= r->from.v)
                first = i;
    int64_t next = -1;
    bool skipping_ts = r->from.set && r->from.is_time;
    int result = 0;
    for (size_t i = first; i < n_segs && !cli_stop; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%020" PRId64 ".log", pdir, segs[i]);
        rn_segment_reader rd;
        rc = rn_segment_reader_open(&rd, pdir, segs[i]);
        if (rc == -ENOENT)
            continue; /* retention deleted it since the listing */
        if (rc < 0) {
            result = rc;
            cli_fail(result, "%s", path);
            break;
        }
        if (rd.limit == 0) {
            rn_segment_reader_close(&rd);
            continue;
        }
        if (next >= 0 && segs[i] != next)
            cli_note("%s-%d: segment %020" PRId64 " does not follow offset %" PRId64
                     " (files missing?): going on from it",
                     r->topic, partition, segs[i], next - 1);
        rd.next_offset = next;
        int err = 0;
        uint64_t bad_pos = 0;
        enum seg_end e = walk_segment(r, partition, &rd, &skipping_ts, &err, &bad_pos);
        next = rd.next_offset;
        rn_segment_reader_close(&rd);
        if (e == SEG_END)
            continue;
        if (e == SEG_BAD) {
            cli_progress_done(&r->progress);
            char after[48] = "";
            if (next >= 0)
                snprintf(after, sizeof(after), " after offset %" PRId64, next - 1);
            cli_note("%s-%d: stopped in segment %020" PRId64 " at position %" PRIu64 "%s: %s",
                     r->topic, partition, segs[i], bad_pos, after, rn_strerror(err));
        } else if (e == SEG_STOP) {
            result = 1;
            if (err) {
                cli_fail(err, "%s", path);
                result = err;
            }
        }
        break;
    }
    free(segs);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Which directories are the live topic's                                    */
/* ------------------------------------------------------------------------ */

/* A name reused after a delete must not hand the old topic's files to
 * replay: a crash can leave them until the broker's next start. The
 * metadata log (DATA_DIR/__cluster_metadata-0) says which topic id the
 * name has now; a partition directory whose partition.metadata names
 * another id is skipped. Records are walked in order, as the broker applies
 * them: a TopicRecord gives the name its id, a RemoveTopicRecord of that id
 * takes it away. The walk stops at the first incomplete or bad batch, where
 * the broker's recovery would cut. A single broker never trims that log; a
 * clustered one deletes it below its snapshots (<end>-<epoch>.checkpoint):
 * the walk then starts from the newest snapshot that loads (the image it
 * holds says whether the name is live), at the snapshot's end offset. */
#define MD_DIR_NAME "__cluster_metadata-0"

/* A clustered broker's metadata log is the Raft log (broker/meta/quorum.c):
 * its directory holds a quorum-state file, and each record's value is
 *   u8 raft kind (0 = data) | u8 envelope kind | i32 origin | u64 token | payload
 * where an ENV_BATCH payload is a batch of MetadataRecords (what a single
 * broker appends directly) and an ENV_CONTROL payload is one MetadataRecord.
 * Leader-change entries and unknown kinds carry no topic: skipped. */
enum { MD_RAFT_DATA = 0, MD_ENV_BATCH = 1, MD_ENV_CONTROL = 2, MD_ENV_HDR = 1 + 1 + 4 + 8 };

static void md_walk_batch(const uint8_t *buf, size_t len, bool cluster, const char *topic,
                          int *live, uint8_t id[16]);

static void md_walk_record(const uint8_t *v, size_t vlen, const char *topic, int *live,
                           uint8_t id[16])
{
    Runnel__Metadata__MetadataRecord *m = runnel__metadata__metadata_record__unpack(NULL, vlen, v);
    if (!m)
        return;
    if (m->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC && m->topic->name &&
        strcmp(m->topic->name, topic) == 0 && m->topic->topic_id.len == 16) {
        memcpy(id, m->topic->topic_id.data, 16);
        *live = 1;
    } else if (m->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD_REMOVE_TOPIC &&
               *live && m->remove_topic->topic_id.len == 16 &&
               memcmp(m->remove_topic->topic_id.data, id, 16) == 0) {
        *live = 0;
    }
    runnel__metadata__metadata_record__free_unpacked(m, NULL);
}

static void md_walk_batch(const uint8_t *buf, size_t len, bool cluster, const char *topic,
                          int *live, uint8_t id[16])
{
    rn_batch_iter it;
    if (rn_batch_iter_init(&it, buf, len, 0) < 0)
        return;
    rn_record rec;
    while (rn_batch_iter_next(&it, &rec) == 1) {
        if (!rec.value || rec.value_len < 0)
            continue;
        const uint8_t *v = rec.value;
        size_t vlen = (size_t)rec.value_len;
        if (!cluster) {
            md_walk_record(v, vlen, topic, live, id);
            continue;
        }
        if (vlen < MD_ENV_HDR || v[0] != MD_RAFT_DATA)
            continue;
        if (v[1] == MD_ENV_BATCH)
            md_walk_batch(v + MD_ENV_HDR, vlen - MD_ENV_HDR, false, topic, live, id);
        else if (v[1] == MD_ENV_CONTROL)
            md_walk_record(v + MD_ENV_HDR, vlen - MD_ENV_HDR, topic, live, id);
    }
    rn_batch_iter_fini(&it);
}

/* A clustered broker's newest snapshot that loads: *live and id as its
 * image has topic, *from its end offset (the log walk starts there). 0
 * with *from 0 when there is no snapshot; -RN_E_CORRUPT_FILE when there
 * are some and none loads. */
static int snapshot_start(const char *mdir, const char *topic, int *live, uint8_t id[16],
                          int64_t *from)
{
    rn_snapshot_id *ids = NULL;
    size_t n = 0;
    *from = 0;
    int rc = rn_snapshot_list(mdir, &ids, &n);
    if (rc < 0 || n == 0) {
        free(ids);
        return rc;
    }
    rc = -RN_E_CORRUPT_FILE;
    for (size_t i = 0; i < n && rc < 0; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        char why[256] = "";
        rn_image *img = NULL;
        int64_t end = 0;
        int r = rn_snapshot_read(mdir, ids[i], &data, &len, why, sizeof(why));
        if (r == 0)
            r = rn_image_new(&img);
        if (r == 0)
            r = rn_snapshot_decode(img, data, len, &end, NULL, why, sizeof(why));
        if (r == 0) {
            const rn_topic_info *t = rn_image_find(img, topic);
            *live = t != NULL;
            if (t)
                memcpy(id, t->id, 16);
            *from = end;
            rc = 0;
        } else if (r == -ENOMEM) {
            rc = r;
        } else {
            fprintf(stderr, "runnel: replay: metadata snapshot %020" PRId64 "-%010" PRId32
                            " skipped: %s\n",
                    ids[i].end_offset, ids[i].epoch, why[0] ? why : rn_errname(r));
        }
        rn_image_free(img);
        free(data);
        if (r == -ENOMEM)
            break;
    }
    free(ids);
    return rc;
}

/* 1 with *id set (the topic is live), 0 (the log has no live topic of that
 * name), -ENOENT (no metadata log: a copied partition directory, read as it
 * is), or another -errno. */
static int live_topic_id(const char *dir, const char *topic, uint8_t id[16])
{
    char mdir[4096];
    if (snprintf(mdir, sizeof(mdir), "%s/%s", dir, MD_DIR_NAME) >= (int)sizeof(mdir))
        return -ENAMETOOLONG;
    int64_t *segs = NULL;
    unsigned n_segs = 0;
    int rc = rn_log_dir_list(mdir, &segs, &n_segs, NULL, NULL);
    if (rc < 0)
        return rc == -ENOTDIR ? -ENOENT : rc;
    char qpath[4096 + 16];
    snprintf(qpath, sizeof(qpath), "%s/quorum-state", mdir);
    bool cluster = access(qpath, F_OK) == 0;
    int live = 0;
    bool stop = false;
    int64_t next = -1, from = 0;
    if (cluster) {
        rc = snapshot_start(mdir, topic, &live, id, &from);
        if (rc == 0 && from == 0 && n_segs > 0 && segs[0] > 0)
            rc = -RN_E_CORRUPT_FILE; /* the log starts past 0 and no snapshot covers it */
        if (rc < 0) {
            free(segs);
            return rc;
        }
    }
    for (unsigned i = 0; i < n_segs && !stop && rc == 0; i++) {
        /* Segments wholly below the snapshot: their records are in it. */
        if (i + 1 < n_segs && segs[i + 1] <= from)
            continue;
        rn_segment_reader rd;
        rc = rn_segment_reader_open(&rd, mdir, segs[i]);
        if (rc == -ENOENT) { /* removed since the listing */
            rc = 0;
            continue;
        }
        if (rc < 0)
            break;
        rd.next_offset = next;
        for (;;) {
            rn_batch_header h;
            int prc = rn_segment_reader_peek(&rd, &h);
            if (prc == 0)
                break;
            if (prc < 0) {
                stop = true; /* a torn tail: what follows is not the log */
                break;
            }
            size_t blen = rn_batch_size(&h);
            uint8_t *b = malloc(blen);
            if (!b) {
                rc = -ENOMEM;
                break;
            }
            if (rn_segment_reader_read(&rd, &h, b) < 0) {
                free(b);
                stop = true;
                break;
            }
            if (h.base_offset >= from)
                md_walk_batch(b, blen, cluster, topic, &live, id);
            free(b);
            rn_segment_reader_advance(&rd, &h);
        }
        next = rd.next_offset;
        rn_segment_reader_close(&rd);
    }
    free(segs);
    if (rc < 0)
        return rc;
    return live;
}

/* Whether the partition directory belongs to the live topic: its
 * partition.metadata names live_id, or it has none (written before the
 * file existed). */
static bool partition_is_live(const char *dir, const char *topic, int64_t p,
                              const uint8_t live_id[16])
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s-%" PRId64 "/%s", dir, topic, p, RN_PARTITION_META_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    char buf[RN_PARTITION_META_LEN + 1];
    ssize_t got = pread(fd, buf, sizeof(buf), 0);
    close(fd);
    uint8_t id[16];
    return got > 0 && rn_partition_meta_parse(buf, (size_t)got, id) == 0 &&
           memcmp(id, live_id, 16) == 0;
}

/* ------------------------------------------------------------------------ */
/* Entry                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: runnel replay DATA_DIR TOPIC [options]\n"
          "\n"
          "Print TOPIC's records straight from the segment files under DATA_DIR\n"
          "(runneld --data-dir): no broker needed, nothing written, safe while a\n"
          "broker runs on it. Partitions print in order, each from its oldest record.\n"
          "\n"
          "options:\n"
          "  -p, --partition N     partition N only; repeatable\n"
          "      --from N|@MS      start at offset N, or at the first record with\n"
          "                        timestamp >= MS (ms since the epoch)\n"
          "      --to N|@MS        stop before offset N, or at the first record with\n"
          "                        timestamp >= MS\n"
          "      --format FORMAT   ndjson (default: one JSON object a line, as consume -J),\n"
          "                        csv (header row; topic,partition,offset,timestamp,key,\n"
          "                        value,headers,encoding), raw (values, each followed by -D)\n"
          "  -D, --delimiter DELIM after each value in raw output (default \\n; '' none)\n"
          "  -c, --count COUNT     stop after COUNT records\n"
          "  -h, --help            this text\n"
          "\n"
          "examples:\n"
          "  runnel replay ./runnel-data orders | jq -c 'select(.key == \"alice\")'\n"
          "  runnel replay ./runnel-data orders --from @1732400000000 --to @1732486400000\n"
          "  runnel replay ./runnel-data orders --format csv > orders.csv   # DuckDB, pandas\n"
          "  runnel replay ./runnel-data images -p 0 --from 42 -c 1 --format raw -D '' > a.jpg\n",
          f);
}

static int parse_bound(const char *opt, const char *s, bound *b)
{
    b->set = true;
    b->is_time = s[0] == '@';
    if (cli_parse_i64(s + b->is_time, 0, INT64_MAX, &b->v) < 0)
        return cli_usage("%s %s: expected an offset N or @MS (ms since the epoch)", opt, s);
    return 0;
}

int cli_replay(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"partition", required_argument, NULL, 'p'},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"delimiter", required_argument, NULL, 'D'},
        {"count", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    replay r = {.fmt = F_NDJSON, .count = -1};
    int64_t *want = NULL, *parts = NULL;
    size_t n_want = 0, n_parts = 0;
    char *delim = NULL;
    size_t delim_len = 1;
    bool delim_set = false;
    int status = CLI_USAGE;

    int c;
    while ((c = cli_getopt(argc, argv, ":p:D:c:h", longopts, NULL, usage, &status)) != -1) {
        int64_t v;
        switch (c) {
        case 'p': {
            if (cli_parse_i64(optarg, 0, INT32_MAX, &v) < 0) {
                status = cli_usage("-p %s: partition must be a number from 0", optarg);
                goto out;
            }
            int64_t *nw = realloc(want, (n_want + 1) * sizeof(*nw));
            if (!nw) {
                status = cli_fail(-ENOMEM, "options");
                goto out;
            }
            want = nw;
            want[n_want++] = v;
            break;
        }
        case OPT_FROM:
            if (parse_bound("--from", optarg, &r.from)) {
                status = CLI_USAGE;
                goto out;
            }
            break;
        case OPT_TO:
            if (parse_bound("--to", optarg, &r.to)) {
                status = CLI_USAGE;
                goto out;
            }
            break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "ndjson") || !strcmp(optarg, "json")) {
                r.fmt = F_NDJSON;
            } else if (!strcmp(optarg, "csv")) {
                r.fmt = F_CSV;
            } else if (!strcmp(optarg, "raw")) {
                r.fmt = F_RAW;
            } else {
                status = cli_usage("--format %s: expected ndjson, csv or raw", optarg);
                goto out;
            }
            break;
        case 'D':
            status = cli_opt_unescape("-D", optarg, &delim, &delim_len);
            if (status != CLI_OK)
                goto out;
            delim_set = true;
            break;
        case 'c':
            if (cli_parse_i64(optarg, 1, INT64_MAX, &r.count) < 0) {
                status = cli_usage("-c %s: expected a count from 1", optarg);
                goto out;
            }
            break;
        case CLI_OPT_EXIT:
            goto out;
        default:
            status = cli_opt_error(c, argv);
            goto out;
        }
    }
    if (argc - optind != 2) {
        status = cli_usage(argc - optind < 2 ? "expected DATA_DIR and TOPIC"
                                             : "too many arguments (DATA_DIR TOPIC)");
        goto out;
    }
    if (delim_set && r.fmt != F_RAW) {
        status = cli_usage("-D goes with --format raw");
        goto out;
    }
    r.dir = argv[optind];
    r.topic = argv[optind + 1];
    status = CLI_ERROR;
    int rc = cli_format_default(NULL, 0, delim_set ? delim : "\n", delim_len, &r.raw_fmt);
    if (rc < 0) {
        cli_fail(rc, "format");
        goto out;
    }
    rc = list_partitions(r.dir, r.topic, &parts, &n_parts);
    if (rc < 0) {
        cli_fail(rc, "data directory %s", r.dir);
        goto out;
    }
    uint8_t live_id[16];
    rc = live_topic_id(r.dir, r.topic, live_id);
    if (rc == 0) {
        cli_fail(0, "no topic '%s' in %s: its metadata log has no such topic (deleted?)", r.topic,
                 r.dir);
        goto out;
    }
    if (rc < 0 && rc != -ENOENT) {
        cli_fail(rc, "metadata log of %s", r.dir);
        goto out;
    }
    if (rc == 1) {
        /* Directories left by an older topic of the same name: not this one. */
        size_t kept = 0;
        for (size_t i = 0; i < n_parts; i++) {
            if (partition_is_live(r.dir, r.topic, parts[i], live_id))
                parts[kept++] = parts[i];
            else
                cli_note("%s/%s-%" PRId64 ": skipped, it belongs to a deleted topic of that name",
                         r.dir, r.topic, parts[i]);
        }
        n_parts = kept;
    }
    if (n_parts == 0) {
        cli_fail(0, "no partition of topic '%s' in %s (looked for %s/%s-N)", r.topic, r.dir, r.dir,
                 r.topic);
        goto out;
    }
    for (size_t i = 0; i < n_want; i++) {
        if (!bsearch(&want[i], parts, n_parts, sizeof(*parts), cmp_i64)) {
            cli_fail(0, "no partition %" PRId64 " of topic '%s' in %s", want[i], r.topic, r.dir);
            goto out;
        }
    }
    if (n_want)
        qsort(want, n_want, sizeof(*want), cmp_i64);

    cli_signals_install();
    cli_progress_init(&r.progress, "records", 0, true);
    if (r.fmt == F_CSV)
        cli_write_csv_header(stdout);

    status = CLI_OK;
    size_t n = n_want ? n_want : n_parts;
    for (size_t i = 0; i < n && !cli_stop; i++) {
        int32_t p = (int32_t)(n_want ? want[i] : parts[i]);
        rc = replay_partition(&r, p);
        if (rc < 0)
            status = CLI_ERROR;
        if (rc != 0)
            break;
    }
    cli_progress_done(&r.progress);
    if (fflush(stdout) != 0 || r.out_failed) {
        status = cli_fail(-EIO, "writing stdout");
    }
out:
    cli_format_free(r.raw_fmt);
    free(r.buf);
    free(r.hdrs);
    free(want);
    free(parts);
    free(delim);
    return status;
}
