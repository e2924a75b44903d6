/*
 * test_reactors_control.c — control APIs (run on reactor 0) in a --reactors 4
 * runneld: answered from every connection with the owners' latest state,
 * delete then create of the same name, AlterConfigs reaching every owner
 * before its answer, and unknown partitions mixed into split requests.
 * Fixture: reactors_helpers.h.
 */
#include "reactors_helpers.h"

TestSuite(reactors_control, .init = setup, .fini = teardown, .timeout = 60);

/* ---- Control APIs ------------------------------------------------------------------------ */

/* Directories of data_dir whose name starts with prefix and contains mark. */
static int count_dirs(const char *data_dir, const char *prefix, const char *mark)
{
    DIR *d = opendir(data_dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && (!mark || strstr(e->d_name, mark)))
            n++;
    closedir(d);
    return n;
}

// Control APIs from every connection, all run by reactor 0: CreateTopics,
// then a split Produce from another connection, then DescribeTopic from a
// third shows the new high watermark and size at once; Metadata lists every
// topic everywhere.
Test(reactors_control, control_apis_from_every_connection)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    enum { NPART = 4 };
    size_t l;
    uint8_t *b = itf_batch("ctl", 3, 1000, &l);
    for (int i = 0; i < NC; i++) {
        char name[16];
        snprintf(name, sizeof(name), "ctl-%02d", i);
        itf_create(c[i], name, NPART, NULL);
        /* Produce to every partition at once from the next connection. */
        it_produce_part pp[NPART];
        for (int p = 0; p < NPART; p++)
            pp[p] = (it_produce_part){name, p, b, l};
        it_resp r;
        cr_assert_eq(it_produce(c[(i + 1) % NC], pp, NPART, 1, &r), 0);
        for (int p = 0; p < NPART; p++) {
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0,
                         "%s-%d right after CreateTopics: %s", name, p,
                         r.hdr->produce->partitions[p]->error_message);
            cr_assert_eq(r.hdr->produce->partitions[p]->base_offset, 0);
        }
        it_resp_free(&r);
        /* The next one produces again to partition i % NPART, then a third
         * describes: the owners' offsets and size are visible on reactor 0. */
        cr_assert_eq(itf_produce(c[(i + 2) % NC], name, i % NPART, b, l), 3);
        cr_assert_eq(it_describe(c[(i + 3) % NC], name, &r), 0);
        cr_assert_eq(r.hdr->error_code, 0);
        Runnel__DescribeTopicResponse *d = r.hdr->describe_topic;
        cr_assert_eq(d->n_partitions, NPART);
        for (int p = 0; p < NPART; p++) {
            Runnel__PartitionDescription *pd = d->partitions[p];
            int64_t n = p == i % NPART ? 6 : 3;
            cr_assert_eq(pd->partition, p);
            cr_assert_eq(pd->high_watermark, n,
                         "%s-%d (owner %u): high watermark %" PRId64 ", want %" PRId64
                         " right after the produce",
                         name, p, owner_of(name, p), pd->high_watermark, n);
            cr_assert_eq(pd->log_end_offset, n);
            cr_assert_eq(pd->log_start_offset, 0);
            cr_assert_eq(pd->size_bytes, (int64_t)(n / 3 * l), "%s-%d: size %" PRId64, name, p,
                         pd->size_bytes);
        }
        it_resp_free(&r);
    }
    for (int k = 0; k < NC; k++) {
        it_resp r;
        cr_assert_eq(it_metadata(c[k], NULL, 0, &r), 0);
        int seen = 0;
        for (size_t t = 0; t < r.hdr->metadata->n_topics; t++) {
            Runnel__TopicMetadata *tm = r.hdr->metadata->topics[t];
            if (strncmp(tm->name, "ctl-", 4))
                continue;
            seen++;
            cr_assert_eq(tm->error_code, 0);
            cr_assert_eq(tm->n_partitions, NPART, "%s", tm->name);
        }
        cr_assert_eq(seen, NC, "conn %d sees %d of the %d topics", k, seen, NC);
        it_resp_free(&r);
    }
    free(b);
    finish_clean(c, NC);
}

// DeleteTopics then CreateTopics of the same name at once (from different
// connections, five times over, with more partitions each time): from every
// connection the new topic is empty and takes data at offset 0, none of the
// old data shows, and the old directories go away.
Test(reactors_control, delete_then_create_same_name)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    const char *name = "phoenix";
    int n_parts = 4;
    itf_create(c[0], name, n_parts, NULL);
    for (int round = 0; round < 5; round++) {
        /* Old data on every partition. */
        char tag[16];
        snprintf(tag, sizeof(tag), "old%d", round);
        size_t l;
        uint8_t *old = itf_batch(tag, 4, 1000, &l);
        it_produce_part pp[16];
        for (int p = 0; p < n_parts; p++)
            pp[p] = (it_produce_part){name, p, old, l};
        it_resp r;
        cr_assert_eq(it_produce(c[round], pp, (size_t)n_parts, 1, &r), 0);
        for (int p = 0; p < n_parts; p++)
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0);
        it_resp_free(&r);

        cr_assert_eq(it_delete_topics(c[round + 1], &name, 1, &r), 0);
        cr_assert_eq(r.hdr->delete_topics->topics[0]->error_code, 0);
        it_resp_free(&r);
        n_parts++;
        itf_create(c[round + 2], name, n_parts, NULL);

        tp parts[16];
        for (int p = 0; p < n_parts; p++)
            parts[p] = (tp){name, p};
        for (int k = 0; k < NC; k++) {
            fetch_parts(c[k], parts, NULL, (size_t)n_parts, &r);
            for (int p = 0; p < n_parts; p++) {
                Runnel__FetchPartitionResponse *e = r.hdr->fetch->partitions[p];
                cr_assert_eq(e->error_code, 0, "round %d conn %d: %s-%d error %u", round, k, name,
                             p, e->error_code);
                cr_assert_eq(e->high_watermark, 0,
                             "round %d conn %d: re-created %s-%d has high watermark %" PRId64,
                             round, k, name, p, e->high_watermark);
                cr_assert_eq(e->bytes_len, 0, "round %d: old data in %s-%d", round, name, p);
            }
            it_resp_free(&r);
        }
        cr_assert_eq(it_describe(c[round + 3], name, &r), 0);
        cr_assert_eq(r.hdr->describe_topic->n_partitions, (size_t)n_parts);
        for (int p = 0; p < n_parts; p++) {
            cr_assert_eq(r.hdr->describe_topic->partitions[p]->log_end_offset, 0);
            cr_assert_eq(r.hdr->describe_topic->partitions[p]->size_bytes, 0);
        }
        it_resp_free(&r);
        /* New data lands at 0 and is all there is. */
        size_t nl;
        uint8_t *nb = itf_batch("new", 2, 2000, &nl);
        for (int p = 0; p < n_parts; p++)
            pp[p] = (it_produce_part){name, p, nb, nl};
        cr_assert_eq(it_produce(c[round + 4], pp, (size_t)n_parts, 1, &r), 0);
        for (int p = 0; p < n_parts; p++) {
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0);
            cr_assert_eq(r.hdr->produce->partitions[p]->base_offset, 0);
        }
        it_resp_free(&r);
        fetch_parts(c[round + 5], parts, NULL, (size_t)n_parts, &r);
        for (int p = 0; p < n_parts; p++) {
            const uint8_t *data;
            size_t len;
            it_fetch_data(&r, (size_t)p, &data, &len);
            assert_batch_stored(data, len, nb, nl, 0);
        }
        it_resp_free(&r);
        free(old);
        free(nb);
    }
    /* The owners remove the old directories (moved aside by reactor 0). */
    int left = -1;
    for (int64_t deadline = it_now_ms() + 5000; it_now_ms() < deadline; usleep(20000)) {
        left = count_dirs(B.data_dir, "phoenix-", ".deleted");
        if (left == 0)
            break;
    }
    cr_assert_eq(left, 0, "%d deleted partition directories left behind", left);
    cr_assert_eq(count_dirs(B.data_dir, "phoenix-", NULL), n_parts);
    finish_clean(c, NC);
}

// AlterConfigs from one connection reaches every owner before its answer:
// right after max.message.bytes drops below a batch's size, a split Produce
// from another connection is refused on every partition; right after the key
// is deleted again, the same Produce is accepted everywhere.
Test(reactors_control, alter_configs_reaches_every_owner)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    enum { NP = 8 };
    itf_create(c[0], "cfg", NP, NULL);
    tp parts[NP];
    for (int p = 0; p < NP; p++)
        parts[p] = (tp){"cfg", p};
    assert_spread(parts, NP);
    size_t l;
    uint8_t *b = big_batch('c', 1, 3000, 1000, &l);
    it_produce_part pp[NP];
    for (int p = 0; p < NP; p++)
        pp[p] = (it_produce_part){"cfg", p, b, l};
    int64_t next = 0;
    for (int round = 0; round < 4; round++) {
        it_conn *a = c[4 * round], *q = c[4 * round + 1], *a2 = c[4 * round + 2],
                *q2 = c[4 * round + 3];
        it_resp r;
        cr_assert_eq(it_alter(a, "cfg", "max.message.bytes=2048", NULL, false, &r), 0);
        cr_assert_eq(r.hdr->error_code, 0, "alter: %s", r.hdr->error_message);
        it_resp_free(&r);
        cr_assert_eq(it_produce(q, pp, NP, 1, &r), 0);
        for (int p = 0; p < NP; p++)
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, RN_E_MESSAGE_TOO_LARGE,
                         "round %d: cfg-%d (owner %u) took a %zu-byte batch right after "
                         "max.message.bytes=2048 (error %u)",
                         round, p, owner_of("cfg", p), l,
                         r.hdr->produce->partitions[p]->error_code);
        it_resp_free(&r);
        cr_assert_eq(it_alter(a2, "cfg", NULL, "max.message.bytes", false, &r), 0);
        cr_assert_eq(r.hdr->error_code, 0, "alter: %s", r.hdr->error_message);
        it_resp_free(&r);
        cr_assert_eq(it_produce(q2, pp, NP, 1, &r), 0);
        for (int p = 0; p < NP; p++) {
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0,
                         "round %d: cfg-%d (owner %u) refused a batch after the limit was "
                         "deleted: %s",
                         round, p, owner_of("cfg", p),
                         r.hdr->produce->partitions[p]->error_message);
            cr_assert_eq(r.hdr->produce->partitions[p]->base_offset, next);
        }
        it_resp_free(&r);
        next++;
    }
    free(b);
    finish_clean(c, NC);
}
/* ---- Errors mixed into split requests ------------------------------------------------- */

// Unknown topics, partitions past the count and an internal topic mixed into
// split Produce, Fetch and ListOffsets requests get their own errors while the
// partitions around them (all owners) succeed; a long poll with an unknown
// partition answers at once, as with one reactor.
Test(reactors_control, unknown_partitions_in_split_requests)
{
    it_conn *c[4];
    open_conns(&B, c, 4);
    itf_create(c[0], "mix", 8, NULL);
    tp good[8];
    for (int p = 0; p < 8; p++)
        good[p] = (tp){"mix", p};
    assert_spread(good, 8);
    /* Entries: good ones with bad ones in between. */
    static const struct {
        const char *topic;
        int32_t partition;
        uint32_t err;
    } e[] = {{"mix", 0, 0},
             {"nosuch", 0, RN_E_UNKNOWN_TOPIC},
             {"mix", 1, 0},
             {"mix", 8, RN_E_UNKNOWN_TOPIC},
             {"mix", 2, 0},
             {"mix", 3, 0},
             {"mix", 1000000, RN_E_UNKNOWN_TOPIC},
             {"mix", 4, 0},
             {"__offsets", 0, RN_E_INVALID_TOPIC},
             {"mix", 5, 0},
             {"nosuch", 3, RN_E_UNKNOWN_TOPIC},
             {"mix", 6, 0},
             {"mix", INT32_MAX, RN_E_UNKNOWN_TOPIC},
             {"mix", 7, 0}};
    enum { NE = sizeof(e) / sizeof(e[0]) };
    size_t l;
    uint8_t *b = itf_batch("mixed", 3, 1000, &l);
    it_produce_part pp[NE];
    for (int i = 0; i < NE; i++)
        pp[i] = (it_produce_part){e[i].topic, e[i].partition, b, l};
    for (int k = 0; k < 4; k++) {
        it_resp r;
        cr_assert_eq(it_produce(c[k], pp, NE, 1, &r), 0);
        cr_assert_eq(r.hdr->produce->n_partitions, NE);
        for (int i = 0; i < NE; i++) {
            Runnel__ProducePartitionResponse *pr = r.hdr->produce->partitions[i];
            cr_assert_str_eq(pr->topic, e[i].topic);
            cr_assert_eq(pr->partition, e[i].partition);
            cr_assert_eq(pr->error_code, e[i].err, "produce %s-%d: error %u, want %u", e[i].topic,
                         e[i].partition, pr->error_code, e[i].err);
            if (!e[i].err)
                cr_assert_eq(pr->base_offset, 3 * k);
        }
        it_resp_free(&r);
    }
    /* Fetch: the same mix (no internal topic), plus an offset out of range. */
    it_fetch_part fp[NE + 1];
    size_t nf = 0;
    for (int i = 0; i < NE; i++)
        if (strcmp(e[i].topic, "__offsets"))
            fp[nf++] = (it_fetch_part){e[i].topic, e[i].partition, 0, 0};
    fp[nf++] = (it_fetch_part){"mix", 3, 999, 0};
    for (int k = 0; k < 4; k++) {
        it_resp r;
        cr_assert_eq(it_fetch(c[k], fp, nf, NULL, &r), 0);
        assert_payload_lines_up(&r);
        cr_assert_eq(r.hdr->fetch->n_partitions, nf);
        for (size_t i = 0; i < nf; i++) {
            Runnel__FetchPartitionResponse *fr = r.hdr->fetch->partitions[i];
            cr_assert_str_eq(fr->topic, fp[i].topic);
            cr_assert_eq(fr->partition, fp[i].partition);
            bool bad = strcmp(fp[i].topic, "mix") || fp[i].partition >= 8;
            if (bad) {
                cr_assert_eq(fr->error_code, RN_E_UNKNOWN_TOPIC, "fetch %s-%d: error %u",
                             fp[i].topic, fp[i].partition, fr->error_code);
                cr_assert_eq(fr->bytes_len, 0);
            } else if (fp[i].offset == 999) {
                cr_assert_eq(fr->error_code, RN_E_OFFSET_OUT_OF_RANGE);
                cr_assert_eq(fr->high_watermark, 12);
            } else {
                cr_assert_eq(fr->error_code, 0, "fetch mix-%d: error %u", fp[i].partition,
                             fr->error_code);
                cr_assert_eq(fr->bytes_len, 4 * l);
                const uint8_t *data;
                size_t len;
                it_fetch_data(&r, i, &data, &len);
                for (int j = 0; j < 4; j++)
                    assert_batch_stored(data + (size_t)j * l, l, b, l, 3 * j);
            }
        }
        it_resp_free(&r);
    }
    /* ListOffsets: the same mix. */
    lo_q q[NE];
    size_t nq = 0;
    for (int i = 0; i < NE; i++)
        if (strcmp(e[i].topic, "__offsets"))
            q[nq++] = (lo_q){e[i].topic, e[i].partition, -1};
    it_resp r;
    list_offsets_multi(c[1], q, nq, &r);
    for (size_t i = 0; i < nq; i++) {
        Runnel__ListOffsetsPartitionResponse *lr = r.hdr->list_offsets->partitions[i];
        bool bad = strcmp(q[i].topic, "mix") || q[i].partition >= 8;
        cr_assert_eq(lr->error_code, bad ? RN_E_UNKNOWN_TOPIC : 0, "list %s-%d: error %u",
                     q[i].topic, q[i].partition, lr->error_code);
        if (!bad)
            cr_assert_eq(lr->offset, 12);
    }
    it_resp_free(&r);
    /* A long poll at the end of every good partition plus one unknown: the
     * error answers it at once. */
    nf = 0;
    for (int p = 0; p < 8; p++) {
        fp[nf++] = (it_fetch_part){"mix", p, 12, 0};
        if (p == 5)
            fp[nf++] = (it_fetch_part){"nosuch", 1, 0, 0};
    }
    it_fetch_opts o = {.max_wait_ms = 3000, .min_bytes = 1};
    int64_t t0 = it_now_ms();
    cr_assert_eq(it_fetch(c[2], fp, nf, &o, &r), 0);
    int64_t dt = it_now_ms() - t0;
    cr_assert_lt(dt, 1500, "a long poll with an unknown partition waited %" PRId64 " ms", dt);
    for (size_t i = 0; i < nf; i++)
        cr_assert_eq(r.hdr->fetch->partitions[i]->error_code,
                     strcmp(fp[i].topic, "mix") ? RN_E_UNKNOWN_TOPIC : 0);
    cr_assert_eq(r.payload_len, 0);
    it_resp_free(&r);
    free(b);
    close_conns(c, 4);
    itf_stop_clean(&B);
    itf_passed = true;
}
