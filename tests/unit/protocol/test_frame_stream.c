/*
 * test_frame_stream.c — the frame decoder over a byte stream
 * (protocol/frame.[ch]): a stream cut at every byte boundary, one byte at a
 * time and in random chunks, frames not copied and received in place; and
 * every length check of the prefix (below four, huge before allocating,
 * the maximum and one past it, header length), a sticky error and random
 * bytes. Helpers: frame_helpers.h.
 */
#include "frame_helpers.h"

/* ---- Stream cutting ------------------------------------------------------------ */

#define MAX_FRAMES 8

typedef struct seen {
    size_t n;
    uint8_t *hdr[MAX_FRAMES], *pay[MAX_FRAMES];
    uint32_t hlen[MAX_FRAMES], plen[MAX_FRAMES];
} seen;

static void seen_add(seen *s, const rn_frame *f)
{
    cr_assert_lt(s->n, MAX_FRAMES);
    s->hdr[s->n] = malloc(f->header_len + 1);
    s->pay[s->n] = malloc(f->payload_len + 1);
    memcpy(s->hdr[s->n], f->header, f->header_len);
    memcpy(s->pay[s->n], f->payload, f->payload_len);
    s->hlen[s->n] = f->header_len;
    s->plen[s->n] = f->payload_len;
    s->n++;
}

static void seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->hdr[i]);
        free(s->pay[i]);
    }
    s->n = 0;
}

/* Feed buf as one recv would deliver it, collecting frames. */
static void feed_chunk(rn_frame_decoder *d, const uint8_t *buf, size_t len, seen *s)
{
    while (len > 0) {
        rn_frame f;
        size_t used;
        int r = rn_frame_decoder_feed(d, buf, len, &used, &f);
        cr_assert_geq(r, 0, "feed: %s", rn_frame_decoder_errmsg(d));
        cr_assert_leq(used, len);
        if (r == 0) {
            cr_assert_eq(used, len, "no frame but bytes left over");
            return;
        }
        seen_add(s, &f);
        buf += used;
        len -= used;
    }
}

/* Four frames back to back: ApiVersions, Produce with a payload, an empty
 * header with no payload (the smallest frame), Metadata. */
static uint8_t *make_stream(size_t *len, seen *expect)
{
    Runnel__ApiVersionsRequest av = RUNNEL__API_VERSIONS_REQUEST__INIT;
    Runnel__RequestHeader h1 = req_header(RUNNEL__API__API_VERSIONS, 1);
    h1.api_versions = &av;
    uint8_t batch[70];
    for (size_t i = 0; i < sizeof(batch); i++)
        batch[i] = (uint8_t)(0xc0 + i);
    Runnel__ProducePartition pp = RUNNEL__PRODUCE_PARTITION__INIT;
    pp.topic = "t", pp.batch_len = sizeof(batch);
    Runnel__ProducePartition *pps[] = {&pp};
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = 1, pr.n_partitions = 1, pr.partitions = pps;
    Runnel__RequestHeader h2 = req_header(RUNNEL__API__PRODUCE, 2);
    h2.produce = &pr;
    char *topics[] = {"t"};
    Runnel__MetadataRequest md = RUNNEL__METADATA_REQUEST__INIT;
    md.n_topics = 1, md.topics = topics;
    Runnel__RequestHeader h4 = req_header(RUNNEL__API__METADATA, 4);
    h4.metadata = &md;

    size_t l1, l2, l3, l4;
    uint8_t *f1 = wire_frame(&h1.base, NULL, 0, &l1);
    uint8_t *f2 = wire_frame(&h2.base, batch, sizeof(batch), &l2);
    uint8_t *f3 = raw_frame(NULL, 0, NULL, 0, &l3);
    uint8_t *f4 = wire_frame(&h4.base, NULL, 0, &l4);
    uint8_t *all = malloc(l1 + l2 + l3 + l4);
    memcpy(all, f1, l1);
    memcpy(all + l1, f2, l2);
    memcpy(all + l1 + l2, f3, l3);
    memcpy(all + l1 + l2 + l3, f4, l4);
    *len = l1 + l2 + l3 + l4;
    free(f1);
    free(f2);
    free(f3);
    free(f4);

    /* What must come out: fed whole, in one call sequence. */
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    memset(expect, 0, sizeof(*expect));
    feed_chunk(&d, all, *len, expect);
    rn_frame_decoder_fini(&d);
    cr_assert_eq(expect->n, 4);
    cr_assert_eq(expect->plen[1], sizeof(batch));
    cr_assert_eq(expect->hlen[2], 0);
    cr_assert_eq(expect->plen[2], 0);
    return all;
}

static void assert_same(const seen *a, const seen *b, size_t cut)
{
    cr_assert_eq(a->n, b->n, "cut at %zu: %zu frames, expected %zu", cut, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_eq(a->hlen[i], b->hlen[i], "cut at %zu frame %zu", cut, i);
        cr_assert_eq(a->plen[i], b->plen[i], "cut at %zu frame %zu", cut, i);
        cr_assert(memcmp(a->hdr[i], b->hdr[i], a->hlen[i]) == 0, "cut %zu frame %zu", cut, i);
        cr_assert(memcmp(a->pay[i], b->pay[i], a->plen[i]) == 0, "cut %zu frame %zu", cut, i);
    }
}

// A stream of frames cut in two at every byte boundary yields the same frames.
Test(frame_stream, stream_split_at_every_boundary)
{
    seen expect, got;
    size_t len;
    uint8_t *all = make_stream(&len, &expect);
    for (size_t cut = 0; cut <= len; cut++) {
        /* Copies at exact sizes so ASan sees any read past a feed. */
        uint8_t *a = malloc(cut + 1), *b = malloc(len - cut + 1);
        memcpy(a, all, cut);
        memcpy(b, all + cut, len - cut);
        rn_frame_decoder d;
        rn_frame_decoder_init(&d, NULL);
        memset(&got, 0, sizeof(got));
        feed_chunk(&d, a, cut, &got);
        free(a); /* no frame may point into a chunk once it is fed */
        feed_chunk(&d, b, len - cut, &got);
        cr_assert_eq(rn_frame_decoder_buffered(&d), 0);
        assert_same(&got, &expect, cut);
        seen_free(&got);
        rn_frame_decoder_fini(&d);
        free(b);
    }
    seen_free(&expect);
    free(all);
}

// The same stream fed one byte at a time, and in pseudo-random chunk sizes.
Test(frame_stream, stream_byte_at_a_time_and_random_chunks)
{
    seen expect, got;
    size_t len;
    uint8_t *all = make_stream(&len, &expect);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    memset(&got, 0, sizeof(got));
    size_t frame_start = 0, k = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t byte = all[i];
        feed_chunk(&d, &byte, 1, &got);
        /* Exactly the bytes of the frame in progress are held; none at a boundary. */
        if (i + 1 == frame_start + 8 + expect.hlen[k] + expect.plen[k]) {
            cr_assert_eq(got.n, k + 1, "frame %zu not out at byte %zu", k, i);
            frame_start = i + 1;
            k++;
        }
        cr_assert_eq(rn_frame_decoder_buffered(&d), i + 1 - frame_start, "byte %zu", i);
    }
    cr_assert_eq(k, expect.n);
    cr_assert_eq(rn_frame_decoder_buffered(&d), 0);
    assert_same(&got, &expect, 1);
    seen_free(&got);
    rn_frame_decoder_fini(&d);

    for (int round = 0; round < 200; round++) {
        rn_frame_decoder_init(&d, NULL);
        memset(&got, 0, sizeof(got));
        for (size_t off = 0; off < len;) {
            size_t n = 1 + rng() % 40;
            if (n > len - off)
                n = len - off;
            feed_chunk(&d, all + off, n, &got);
            off += n;
        }
        assert_same(&got, &expect, (size_t)round);
        seen_free(&got);
        rn_frame_decoder_fini(&d);
    }
    seen_free(&expect);
    free(all);
}

// A frame whole in the fed buffer is returned in place; a split one is gathered.
Test(frame_stream, whole_frame_is_not_copied)
{
    seen expect;
    size_t len;
    uint8_t *all = make_stream(&len, &expect);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    rn_frame f;
    size_t used;
    cr_assert_eq(rn_frame_decoder_feed(&d, all, len, &used, &f), 1);
    cr_assert_eq(f.header, all + 8);
    cr_assert_null(rn_frame_decoder_steal(&d)); /* nothing of d's to take */
    /* Also when the buffer ends exactly where the frame does. */
    rn_frame_decoder d1;
    rn_frame_decoder_init(&d1, NULL);
    rn_frame f1;
    size_t used1;
    cr_assert_eq(rn_frame_decoder_feed(&d1, all, used, &used1, &f1), 1);
    cr_assert_eq(used1, used);
    cr_assert_eq(f1.header, all + 8);
    cr_assert_eq(f1.payload, all + used);
    rn_frame_decoder_fini(&d1);

    /* Now the second frame split in two: it comes from the decoder's buffer. */
    const uint8_t *second = all + used;
    size_t second_len = 8 + expect.hlen[1] + expect.plen[1], half = second_len / 2;
    cr_assert_eq(rn_frame_decoder_feed(&d, second, half, &used, &f), 0);
    cr_assert_eq(used, half);
    cr_assert_eq(rn_frame_decoder_buffered(&d), half);
    cr_assert_eq(
        rn_frame_decoder_feed(&d, second + half, len - (size_t)(second - all) - half, &used, &f),
        1);
    cr_assert_eq(used, second_len - half);
    /* The caller may keep the gathered frame past the next feed. */
    void *owned = rn_frame_decoder_steal(&d);
    cr_assert_not_null(owned);
    cr_assert_eq(f.header, (uint8_t *)owned + 4);
    const uint8_t *kept = f.payload;
    cr_assert_eq(rn_frame_decoder_feed(&d, second + second_len, 4, &used, &f), 0);
    cr_assert(memcmp(kept, expect.pay[1], expect.plen[1]) == 0);
    free(owned);
    rn_frame_decoder_fini(&d);
    seen_free(&expect);
    free(all);
}

/* rn_frame_bufs that count, so a test sees every buffer come back. */
typedef struct counting_bufs {
    unsigned gets, puts;
    size_t last_len;
} counting_bufs;

static void *cb_get(void *ctx, size_t len)
{
    counting_bufs *cb = ctx;
    cb->gets++;
    cb->last_len = len;
    return malloc(len);
}

static void cb_put(void *ctx, void *p)
{
    counting_bufs *cb = ctx;
    cb->puts++;
    free(p);
}

// With the caller's buffers set, every gathered frame is taken from them and
// goes back to them: after the next feed, by the caller once stolen, or at fini.
Test(frame_stream, gathered_frames_use_the_callers_buffers)
{
    seen expect;
    size_t len;
    uint8_t *all = make_stream(&len, &expect);
    counting_bufs cb = {0};
    rn_frame_bufs bufs = {cb_get, cb_put, &cb};
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    rn_frame_decoder_set_bufs(&d, &bufs);
    seen got = {0};
    unsigned frames = 0;
    void *stolen = NULL;
    /* One byte at a time: every frame spans feeds. */
    for (size_t i = 0; i < len; i++) {
        size_t used;
        rn_frame f;
        int rc = rn_frame_decoder_feed(&d, all + i, 1, &used, &f);
        cr_assert_geq(rc, 0);
        if (rc == 1) {
            cr_assert_eq(cb.last_len, 4 + (size_t)f.header_len + f.payload_len);
            seen_add(&got, &f);
            if (frames++ == 0)
                stolen = rn_frame_decoder_steal(&d);
        }
    }
    cr_assert_eq(got.n, expect.n);
    cr_expect_eq(cb.gets, expect.n);
    cr_expect_eq(cb.puts, expect.n - 2); /* not the stolen one, nor the last */
    cb_put(&cb, stolen);
    rn_frame_decoder_fini(&d);
    cr_expect_eq(cb.puts, cb.gets);
    seen_free(&got);
    seen_free(&expect);
    free(all);
}

// The rest of a big frame can be received straight into the decoder's
// buffer (space/commit): the frame is whole and byte-exact, committing more
// than was asked fails, and nothing is offered between frames.
Test(frame_stream, receive_in_place)
{
    uint8_t pay[200000];
    for (size_t i = 0; i < sizeof(pay); i++)
        pay[i] = (uint8_t)(i * 7 + 3);
    Runnel__ProducePartition pp = RUNNEL__PRODUCE_PARTITION__INIT, *ppp = &pp;
    pp.topic = "t";
    pp.batch_len = sizeof(pay);
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = 1;
    pr.n_partitions = 1;
    pr.partitions = &ppp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__PRODUCE;
    h.correlation_id = 9;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_PRODUCE;
    h.produce = &pr;
    size_t len;
    uint8_t *w = wire_frame(&h.base, pay, sizeof(pay), &len);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    uint8_t *dst = NULL;
    cr_assert_eq(rn_frame_decoder_space(&d, &dst), 0, "nothing is being gathered yet");
    rn_frame f;
    size_t used;
    cr_assert_eq(rn_frame_decoder_feed(&d, w, 1000, &used, &f), 0);
    size_t space = rn_frame_decoder_space(&d, &dst);
    cr_assert_eq(space, len - 1000);
    cr_assert_eq(rn_frame_decoder_commit(&d, space + 1, &f), -EINVAL);
    /* Two receives in place, then the frame. */
    memcpy(dst, w + 1000, 50000);
    cr_assert_eq(rn_frame_decoder_commit(&d, 50000, &f), 0);
    cr_assert_eq(rn_frame_decoder_space(&d, &dst), len - 51000);
    memcpy(dst, w + 51000, len - 51000);
    cr_assert_eq(rn_frame_decoder_commit(&d, len - 51000, &f), 1);
    cr_assert_eq(f.payload_len, sizeof(pay));
    cr_assert(memcmp(f.payload, pay, sizeof(pay)) == 0);
    cr_assert_eq(rn_frame_decoder_space(&d, &dst), 0, "the returned frame is not a gap");
    cr_assert_eq(rn_frame_decoder_commit(&d, 1, &f), -EINVAL);
    rn_frame_request req;
    char err[128];
    cr_assert_eq(rn_frame_request_decode(&req, &f, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.correlation_id, 9);
    rn_frame_request_fini(&req);
    /* The decoder goes on with the next frame as usual. */
    cr_assert_eq(rn_frame_decoder_feed(&d, w, len, &used, &f), 1);
    cr_assert_eq(used, len);
    rn_frame_decoder_fini(&d);
    free(w);
}

/* ---- Prefix checks --------------------------------------------------------------- */

static int feed_prefix(rn_frame_decoder *d, uint32_t frame_len, uint32_t header_len, bool bytewise)
{
    uint8_t p[8];
    uint32_t a = htobe32(frame_len), b = htobe32(header_len);
    memcpy(p, &a, 4);
    memcpy(p + 4, &b, 4);
    rn_frame f;
    size_t used;
    if (!bytewise)
        return rn_frame_decoder_feed(d, p, 8, &used, &f);
    for (int i = 0; i < 8; i++) {
        int r = rn_frame_decoder_feed(d, p + i, 1, &used, &f);
        if (r != 0)
            return r;
    }
    return 0;
}

// frame_length 0..3 cannot even hold header_length: INVALID_REQUEST, whole or bytewise.
Test(frame_stream, frame_length_below_four)
{
    for (uint32_t fl = 0; fl < 4; fl++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            rn_frame_decoder d;
            rn_frame_decoder_init(&d, NULL);
            cr_assert_eq(feed_prefix(&d, fl, 0, bytewise), -RN_E_INVALID_REQUEST, "fl %u", fl);
            cr_assert_neq(rn_frame_decoder_errmsg(&d)[0], '\0');
            rn_frame_decoder_fini(&d);
        }
    }
}

// A huge frame_length is refused after its 4 bytes, before any allocation.
Test(frame_stream, frame_length_huge_fails_before_allocating)
{
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    uint8_t p[4] = {0xff, 0xff, 0xff, 0xff};
    rn_frame f;
    size_t used;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rn_frame_decoder_feed(&d, p + i, 1, &used, &f), 0);
    cr_assert_eq(rn_frame_decoder_feed(&d, p + 3, 1, &used, &f), -RN_E_REQUEST_TOO_LARGE);
    cr_assert_null(d.body);
    cr_assert(strstr(rn_frame_decoder_errmsg(&d), "4294967295") != NULL);
    rn_frame_decoder_fini(&d);

    /* An HTTP request on the native port looks like frame_length 0x47455420. */
    rn_frame_decoder_init(&d, NULL);
    cr_assert_eq(rn_frame_decoder_feed(&d, "GET / HTTP/1.1\r\n", 16, &used, &f),
                 -RN_E_REQUEST_TOO_LARGE);
    rn_frame_decoder_fini(&d);
}

// max_request is inclusive: max passes, max + 1 is REQUEST_TOO_LARGE.
Test(frame_stream, frame_length_max_and_max_plus_one)
{
    rn_frame_limits lim = {.max_request = 1000};
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        rn_frame_decoder d;
        rn_frame_decoder_init(&d, &lim);
        cr_assert_eq(feed_prefix(&d, 1001, 0, bytewise), -RN_E_REQUEST_TOO_LARGE);
        rn_frame_decoder_fini(&d);

        size_t len;
        uint8_t payload[1000 - 4];
        memset(payload, 1, sizeof(payload));
        uint8_t *w = raw_frame(NULL, 0, payload, sizeof(payload), &len);
        rn_frame_decoder_init(&d, &lim);
        seen got = {0};
        if (bytewise) {
            for (size_t i = 0; i < len; i++)
                feed_chunk(&d, w + i, 1, &got);
        } else {
            feed_chunk(&d, w, len, &got);
        }
        cr_assert_eq(got.n, 1);
        cr_assert_eq(got.plen[0], 996);
        seen_free(&got);
        rn_frame_decoder_fini(&d);
        free(w);
    }

    /* The default is socket.request.max.bytes = 100 MiB. */
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    cr_assert_eq(feed_prefix(&d, RN_FRAME_DEFAULT_MAX_REQUEST + 1, 0, false),
                 -RN_E_REQUEST_TOO_LARGE);
    rn_frame_decoder_fini(&d);
    rn_frame_decoder_init(&d, NULL);
    cr_assert_eq(feed_prefix(&d, RN_FRAME_DEFAULT_MAX_REQUEST, 0, false), 0);
    cr_assert_eq(rn_frame_decoder_buffered(&d), 8);
    rn_frame_decoder_fini(&d);
}

/* The decoder failed with err and exactly msg, holding no body. */
static void expect_dec_error(rn_frame_decoder *d, int got, int err, const char *msg)
{
    cr_assert_eq(got, err, "returned %d (%s), want %d", got, rn_frame_decoder_errmsg(d), err);
    cr_assert_str_eq(rn_frame_decoder_errmsg(d), msg);
    cr_assert_null(d->body, "a body was allocated for a refused frame");
}

// header_length beyond frame_length - 4 is INVALID_REQUEST; beyond the cap, TOO_LARGE.
Test(frame_stream, header_length_checks)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        rn_frame_decoder d;
        rn_frame_decoder_init(&d, NULL);
        expect_dec_error(&d, feed_prefix(&d, 100, 97, bytewise), -RN_E_INVALID_REQUEST,
                         "header_length 97 does not fit in frame_length 100");
        rn_frame_decoder_fini(&d);
        rn_frame_decoder_init(&d, NULL);
        expect_dec_error(&d, feed_prefix(&d, 4, 0xffffffffu, bytewise), -RN_E_INVALID_REQUEST,
                         "header_length 4294967295 does not fit in frame_length 4");
        rn_frame_decoder_fini(&d);
        rn_frame_decoder_init(&d, NULL);
        cr_assert_eq(feed_prefix(&d, 100, 96, bytewise), 0); /* fits exactly */
        rn_frame_decoder_fini(&d);

        rn_frame_limits lim = {.max_header = 64};
        rn_frame_decoder_init(&d, &lim);
        expect_dec_error(&d, feed_prefix(&d, 100, 65, bytewise), -RN_E_REQUEST_TOO_LARGE,
                         "header_length 65 exceeds the header limit 64");
        rn_frame_decoder_fini(&d);
        rn_frame_decoder_init(&d, &lim);
        cr_assert_eq(feed_prefix(&d, 100, 64, bytewise), 0);
        rn_frame_decoder_fini(&d);
    }
}

// A header_length past the frame is refused even when the whole frame is in the buffer
// (the fast path that returns slices): no frame comes out, nothing is consumed.
Test(frame_stream, header_length_past_whole_frame)
{
    /* frame_length 8: header_length (4) + 4 more bytes; header_length claims
     * 5 (one too many) or 100; the buffer holds the frame and, in the second
     * round, a valid frame after it, so reading past the frame would not
     * even leave the buffer. */
    static const uint32_t claims[] = {5, 100, 0xffffffffu};
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        for (int tail = 0; tail < 2; tail++) {
            size_t good_len;
            uint8_t *good = raw_frame(NULL, 0, NULL, 0, &good_len);
            uint8_t buf[256] = {0};
            uint32_t fl = htobe32(8), hl = htobe32(claims[i]);
            memcpy(buf, &fl, 4);
            memcpy(buf + 4, &hl, 4);
            size_t len = 12;
            if (tail) {
                cr_assert_leq(len + good_len, sizeof(buf));
                memcpy(buf + len, good, good_len);
                len += good_len;
            }
            rn_frame_decoder d;
            rn_frame_decoder_init(&d, NULL);
            rn_frame f = {0};
            size_t used = 99;
            int r = rn_frame_decoder_feed(&d, buf, len, &used, &f);
            char want[96];
            snprintf(want, sizeof(want), "header_length %u does not fit in frame_length 8",
                     claims[i]);
            expect_dec_error(&d, r, -RN_E_INVALID_REQUEST, want);
            cr_assert_eq(used, 0, "claim %u: %zu bytes consumed", claims[i], used);
            cr_assert_null(f.header, "claim %u: a frame came out", claims[i]);
            rn_frame_decoder_fini(&d);
            free(good);
        }
    }
}

// Once the stream is broken every later feed fails the same way, even with good bytes.
Test(frame_stream, decoder_error_is_sticky)
{
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    cr_assert_eq(feed_prefix(&d, 2, 0, false), -RN_E_INVALID_REQUEST);
    size_t len, used;
    uint8_t *w = raw_frame(NULL, 0, NULL, 0, &len);
    rn_frame f;
    cr_assert_eq(rn_frame_decoder_feed(&d, w, len, &used, &f), -RN_E_INVALID_REQUEST);
    cr_assert_eq(used, 0);
    rn_frame_decoder_fini(&d);
    rn_frame_decoder_fini(&d); /* twice is fine */
    free(w);
}

// Random bytes into the stream decoder never crash: frames or a clean error.
Test(frame_stream, random_stream_bytes)
{
    rn_frame_limits lim = {.max_request = 4096, .max_header = 1024};
    uint8_t buf[512];
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (uint8_t)rng();
        /* Small lengths now and then, so some frames complete. */
        if (round & 1) {
            buf[0] = buf[1] = buf[4] = buf[5] = 0;
            buf[2] &= 1;
            buf[6] = 0;
        }
        rn_frame_decoder d;
        rn_frame_decoder_init(&d, &lim);
        const uint8_t *p = buf;
        size_t left = 1 + rng() % sizeof(buf);
        while (left) {
            rn_frame f;
            size_t used;
            int r = rn_frame_decoder_feed(&d, p, left, &used, &f);
            if (r < 0) {
                cr_assert(r == -RN_E_INVALID_REQUEST || r == -RN_E_REQUEST_TOO_LARGE);
                break;
            }
            if (r == 1) {
                cr_assert_leq(f.header_len + f.payload_len + 8, 4096 + 4);
                rn_frame_request req;
                int dr = rn_frame_request_decode(&req, &f, NULL, NULL, 0);
                cr_assert(dr <= 0);
                rn_frame_request_fini(&req);
            }
            p += used;
            left -= used;
        }
        rn_frame_decoder_fini(&d);
    }
}
