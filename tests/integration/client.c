/*
 * client.c — the integration tests' client and runneld harness (see client.h).
 *
 * How it fits: the tests drive a real runneld process over TCP exactly as a
 * client would, with the same sans-I/O codec the broker uses
 * (protocol/frame.h), so a test exercises the broker's reactor, decoder,
 * handlers and storage end to end. Nothing here links the broker.
 *
 * Wire: every request is `u32 frame_length | u32 header_length | header |
 * payload` (big-endian, docs/protocol.md §1). rn_frame_encode_alloc writes the
 * prefix and header; the payload (Produce record batches) is sent after it.
 * A response is read as 4 bytes of frame_length, then exactly frame_length
 * bytes, and decoded in place with rn_frame_response_decode under limits
 * large enough for any answer a test provokes.
 *
 * Invariants:
 *   1. Sockets are non-blocking and every wait goes through poll with a
 *      deadline, so a broker that hangs fails a test instead of hanging it.
 *   2. An it_resp owns the frame bytes its decoded header and payload point
 *      into; it_resp_free releases both.
 *   3. A broker child never outlives the test process (PR_SET_PDEATHSIG), and
 *      it_broker_destroy kills and reaps it and removes its directory.
 */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol/batch.h"

#ifndef IT_RUNNELD
#define IT_RUNNELD "runneld"
#endif

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Wait for events on fd until the absolute deadline (ms, it_now_ms clock). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - it_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* ---- Connections ------------------------------------------------------------- */

int it_conn_open(it_conn **out, const char *host, uint16_t port, int timeout_ms)
{
    *out = NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    int64_t deadline = it_now_ms() + timeout_ms;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            goto fail;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            rc = -soerr;
            goto fail;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    it_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        rc = -ENOMEM;
        goto fail;
    }
    c->fd = fd;
    c->next_cid = 1;
    /* A client decodes answers far larger than a broker accepts requests:
     * a Fetch of many partitions, a Metadata of many topics. */
    c->lim = (rn_frame_limits){.max_request = 512u << 20,
                               .max_header = 64u << 20,
                               .max_message = 64u << 20,
                               .max_entries = 1000000,
                               .max_decode_mem = 512u << 20};
    *out = c;
    return 0;

fail:
    close(fd);
    return rc;
}

void it_conn_close(it_conn *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}

/* Send (out) or receive exactly len bytes by the deadline, waiting in poll
 * whenever the socket would block. A peer that closes while we receive is
 * -ECONNRESET. */
static int move_exact(it_conn *c, uint8_t *p, size_t len, bool out, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = out ? send(c->fd, p, len, MSG_NOSIGNAL) : recv(c->fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0 && !out)
            return -ECONNRESET;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, out ? POLLOUT : POLLIN, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        return -errno;
    }
    return 0;
}

int it_conn_send_raw(it_conn *c, const void *buf, size_t len, int timeout_ms)
{
    /* move_exact only reads from the buffer when it sends. */
    return move_exact(c, (uint8_t *)buf, len, true, it_now_ms() + timeout_ms);
}

int it_conn_send(it_conn *c, Runnel__RequestHeader *h, const void *payload, size_t len,
                 uint32_t *cid)
{
    h->correlation_id = c->next_cid++;
    if (cid)
        *cid = h->correlation_id;
    uint8_t *buf;
    size_t hlen;
    int rc = rn_frame_encode_alloc(&h->base, len, &buf, &hlen);
    if (rc < 0)
        return rc;
    /* One buffer so the frame leaves in as few segments as possible. */
    uint8_t *frame = realloc(buf, hlen + len);
    if (!frame) {
        free(buf);
        return -ENOMEM;
    }
    if (len)
        memcpy(frame + hlen, payload, len);
    rc = it_conn_send_raw(c, frame, hlen + len, IT_DEFAULT_TIMEOUT_MS);
    free(frame);
    return rc;
}

static int recv_exact(it_conn *c, void *buf, size_t len, int64_t deadline)
{
    return move_exact(c, buf, len, false, deadline);
}

int it_conn_recv(it_conn *c, int expected_api, it_resp *out, int timeout_ms)
{
    memset(out, 0, sizeof(*out));
    int64_t deadline = it_now_ms() + timeout_ms;
    uint8_t pre[4];
    int rc = recv_exact(c, pre, 4, deadline);
    if (rc < 0)
        return rc;
    uint32_t frame_len = get_be32(pre);
    if (frame_len < 4 || frame_len > c->lim.max_request) {
        fprintf(stderr, "it_conn_recv: frame_length %u out of range\n", frame_len);
        return -EPROTO;
    }
    uint8_t *frame = malloc(frame_len);
    if (!frame)
        return -ENOMEM;
    rc = recv_exact(c, frame, frame_len, deadline);
    if (rc < 0) {
        free(frame);
        return rc;
    }
    uint32_t hlen = get_be32(frame);
    if (hlen > frame_len - 4) {
        free(frame);
        fprintf(stderr, "it_conn_recv: header_length %u > frame_length %u - 4\n", hlen, frame_len);
        return -EPROTO;
    }
    rn_frame f = {.header = frame + 4,
                  .header_len = hlen,
                  .payload = frame + 4 + hlen,
                  .payload_len = frame_len - 4 - hlen};
    char err[256] = "";
    rc = rn_frame_response_decode(&out->fr, &f, expected_api, &c->lim, err, sizeof(err));
    if (rc < 0) {
        free(frame);
        fprintf(stderr, "it_conn_recv: response does not decode: %s\n", err);
        return -EPROTO;
    }
    out->frame = frame;
    out->hdr = out->fr.hdr;
    out->payload = out->fr.payload;
    out->payload_len = out->fr.payload_len;
    return 0;
}

void it_resp_free(it_resp *r)
{
    rn_frame_response_fini(&r->fr);
    free(r->frame);
    memset(r, 0, sizeof(*r));
}

int it_call(it_conn *c, Runnel__RequestHeader *h, const void *payload, size_t len, it_resp *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t cid;
    int rc = it_conn_send(c, h, payload, len, &cid);
    if (rc < 0)
        return rc;
    rc = it_conn_recv(c, h->api, out, IT_DEFAULT_TIMEOUT_MS);
    if (rc < 0)
        return rc;
    if (out->hdr->correlation_id != cid) {
        fprintf(stderr, "it_call: correlation id %u, expected %u\n", out->hdr->correlation_id, cid);
        it_resp_free(out);
        return -EPROTO;
    }
    return 0;
}

bool it_conn_wait_closed(it_conn *c, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n == 0)
            return true;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return true; /* reset: closed as well */
        if (n < 0 && wait_fd(c->fd, POLLIN, deadline) < 0)
            return false;
    }
}

/* ---- "k=v,k=v" lists ------------------------------------------------------------ */

#define KV_MAX 32

typedef struct kvlist {
    char *buf;
    size_t n;
    char *keys[KV_MAX];
    char *vals[KV_MAX];
} kvlist;

static int kv_parse(kvlist *kv, const char *s, bool with_values)
{
    memset(kv, 0, sizeof(*kv));
    if (!s || !*s)
        return 0;
    kv->buf = strdup(s);
    if (!kv->buf)
        return -ENOMEM;
    char *save = NULL;
    for (char *tok = strtok_r(kv->buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (kv->n == KV_MAX)
            return -E2BIG;
        char *eq = with_values ? strchr(tok, '=') : NULL;
        if (with_values && !eq)
            return -EINVAL;
        if (eq)
            *eq = 0;
        kv->keys[kv->n] = tok;
        kv->vals[kv->n] = eq ? eq + 1 : NULL;
        kv->n++;
    }
    return 0;
}

/* ---- API helpers ---------------------------------------------------------------- */

int it_api_versions(it_conn *c, it_resp *out)
{
    Runnel__ApiVersionsRequest body = RUNNEL__API_VERSIONS_REQUEST__INIT;
    body.client_software_name = "runnel-integration";
    IT_REQUEST(h, API_VERSIONS, api_versions, &body);
    h.client_id = "it";
    return it_call(c, &h, NULL, 0, out);
}

int it_metadata(it_conn *c, const char *const *topics, size_t n, it_resp *out)
{
    Runnel__MetadataRequest body = RUNNEL__METADATA_REQUEST__INIT;
    body.n_topics = n;
    body.topics = (char **)topics;
    IT_REQUEST(h, METADATA, metadata, &body);
    return it_call(c, &h, NULL, 0, out);
}

int it_create_topics(it_conn *c, const it_topic_spec *topics, size_t n, bool validate_only,
                     it_resp *out)
{
    int rc = -ENOMEM;
    Runnel__NewTopic *nt = calloc(n ? n : 1, sizeof(*nt));
    Runnel__NewTopic **ntp = calloc(n ? n : 1, sizeof(*ntp));
    kvlist *kv = calloc(n ? n : 1, sizeof(*kv));
    Runnel__NewTopic__ConfigsEntry(*ce)[KV_MAX] = calloc(n ? n : 1, sizeof(*ce));
    Runnel__NewTopic__ConfigsEntry *(*cep)[KV_MAX] = calloc(n ? n : 1, sizeof(*cep));
    if (!nt || !ntp || !kv || !ce || !cep)
        goto out;
    for (size_t i = 0; i < n; i++) {
        runnel__new_topic__init(&nt[i]);
        ntp[i] = &nt[i];
        nt[i].name = (char *)topics[i].name;
        nt[i].num_partitions = topics[i].partitions;
        nt[i].replication_factor = topics[i].replication_factor;
        rc = kv_parse(&kv[i], topics[i].configs, true);
        if (rc < 0)
            goto out;
        for (size_t k = 0; k < kv[i].n; k++) {
            runnel__new_topic__configs_entry__init(&ce[i][k]);
            ce[i][k].key = kv[i].keys[k];
            ce[i][k].value = kv[i].vals[k];
            cep[i][k] = &ce[i][k];
        }
        nt[i].n_configs = kv[i].n;
        nt[i].configs = cep[i];
    }
    Runnel__CreateTopicsRequest body = RUNNEL__CREATE_TOPICS_REQUEST__INIT;
    body.n_topics = n;
    body.topics = ntp;
    body.timeout_ms = 5000;
    body.validate_only = validate_only;
    IT_REQUEST(h, CREATE_TOPICS, create_topics, &body);
    rc = it_call(c, &h, NULL, 0, out);
out:
    for (size_t i = 0; kv && i < n; i++)
        free(kv[i].buf);
    free(nt);
    free(ntp);
    free(kv);
    free(ce);
    free(cep);
    return rc;
}

int it_create_topic(it_conn *c, const char *name, int32_t partitions, const char *configs)
{
    it_topic_spec t = {.name = name, .partitions = partitions, .configs = configs};
    it_resp r;
    int rc = it_create_topics(c, &t, 1, false, &r);
    if (rc < 0)
        return rc;
    if (r.hdr->error_code)
        rc = (int)r.hdr->error_code;
    else if (!r.hdr->create_topics || r.hdr->create_topics->n_topics != 1)
        rc = -EPROTO;
    else
        rc = (int)r.hdr->create_topics->topics[0]->error_code;
    it_resp_free(&r);
    return rc;
}

int it_delete_topics(it_conn *c, const char *const *names, size_t n, it_resp *out)
{
    Runnel__DeleteTopicsRequest body = RUNNEL__DELETE_TOPICS_REQUEST__INIT;
    body.n_topics = n;
    body.topics = (char **)names;
    body.timeout_ms = 5000;
    IT_REQUEST(h, DELETE_TOPICS, delete_topics, &body);
    return it_call(c, &h, NULL, 0, out);
}

int it_describe(it_conn *c, const char *name, it_resp *out)
{
    Runnel__DescribeTopicRequest body = RUNNEL__DESCRIBE_TOPIC_REQUEST__INIT;
    body.name = (char *)name;
    IT_REQUEST(h, DESCRIBE_TOPIC, describe_topic, &body);
    return it_call(c, &h, NULL, 0, out);
}

int it_alter(it_conn *c, const char *topic, const char *set, const char *del, bool validate_only,
             it_resp *out)
{
    kvlist sk, dk;
    int rc = kv_parse(&sk, set, true);
    if (rc == 0)
        rc = kv_parse(&dk, del, false);
    else
        memset(&dk, 0, sizeof(dk));
    if (rc < 0)
        goto out;
    Runnel__AlterConfigsRequest__SetConfigsEntry ce[KV_MAX], *cep[KV_MAX];
    for (size_t k = 0; k < sk.n; k++) {
        runnel__alter_configs_request__set_configs_entry__init(&ce[k]);
        ce[k].key = sk.keys[k];
        ce[k].value = sk.vals[k];
        cep[k] = &ce[k];
    }
    Runnel__AlterConfigsRequest body = RUNNEL__ALTER_CONFIGS_REQUEST__INIT;
    body.topic = (char *)topic;
    body.n_set_configs = sk.n;
    body.set_configs = cep;
    body.n_delete_configs = dk.n;
    body.delete_configs = dk.keys;
    body.validate_only = validate_only;
    IT_REQUEST(h, ALTER_CONFIGS, alter_configs, &body);
    rc = it_call(c, &h, NULL, 0, out);
out:
    free(sk.buf);
    free(dk.buf);
    return rc;
}

int it_produce_send(it_conn *c, const it_produce_part *parts, size_t n, int acks, uint32_t *cid)
{
    int rc = -ENOMEM;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += parts[i].len;
    Runnel__ProducePartition *pp = calloc(n ? n : 1, sizeof(*pp));
    Runnel__ProducePartition **ppp = calloc(n ? n : 1, sizeof(*ppp));
    uint8_t *payload = malloc(total ? total : 1);
    if (!pp || !ppp || !payload)
        goto out;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        runnel__produce_partition__init(&pp[i]);
        ppp[i] = &pp[i];
        pp[i].topic = (char *)parts[i].topic;
        pp[i].partition = parts[i].partition;
        pp[i].batch_len = (uint32_t)parts[i].len;
        memcpy(payload + off, parts[i].batch, parts[i].len);
        off += parts[i].len;
    }
    Runnel__ProduceRequest body = RUNNEL__PRODUCE_REQUEST__INIT;
    body.acks = acks;
    body.timeout_ms = 5000;
    body.n_partitions = n;
    body.partitions = ppp;
    IT_REQUEST(h, PRODUCE, produce, &body);
    rc = it_conn_send(c, &h, payload, total, cid);
out:
    free(pp);
    free(ppp);
    free(payload);
    return rc;
}

int it_produce(it_conn *c, const it_produce_part *parts, size_t n, int acks, it_resp *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t cid;
    int rc = it_produce_send(c, parts, n, acks, &cid);
    if (rc < 0 || acks == 0)
        return rc;
    rc = it_conn_recv(c, RUNNEL__API__PRODUCE, out, IT_DEFAULT_TIMEOUT_MS);
    if (rc == 0 && out->hdr->correlation_id != cid) {
        it_resp_free(out);
        rc = -EPROTO;
    }
    return rc;
}

int it_produce_one(it_conn *c, const char *topic, int32_t partition, const void *batch, size_t len,
                   int acks, int64_t *base_offset)
{
    it_produce_part p = {.topic = topic, .partition = partition, .batch = batch, .len = len};
    it_resp r;
    int rc = it_produce(c, &p, 1, acks, &r);
    if (rc < 0 || acks == 0)
        return rc;
    if (r.hdr->error_code)
        rc = (int)r.hdr->error_code;
    else if (!r.hdr->produce || r.hdr->produce->n_partitions != 1)
        rc = -EPROTO;
    else {
        rc = (int)r.hdr->produce->partitions[0]->error_code;
        if (base_offset)
            *base_offset = r.hdr->produce->partitions[0]->base_offset;
    }
    it_resp_free(&r);
    return rc;
}

int it_fetch_send(it_conn *c, const it_fetch_part *parts, size_t n, const it_fetch_opts *opts,
                  uint32_t *cid)
{
    Runnel__FetchPartition *fp = calloc(n ? n : 1, sizeof(*fp));
    Runnel__FetchPartition **fpp = calloc(n ? n : 1, sizeof(*fpp));
    int rc = -ENOMEM;
    if (!fp || !fpp)
        goto out;
    for (size_t i = 0; i < n; i++) {
        runnel__fetch_partition__init(&fp[i]);
        fpp[i] = &fp[i];
        fp[i].topic = (char *)parts[i].topic;
        fp[i].partition = parts[i].partition;
        fp[i].fetch_offset = parts[i].offset;
        fp[i].partition_max_bytes = parts[i].partition_max_bytes;
        fp[i].current_leader_epoch = -1;
    }
    Runnel__FetchRequest body = RUNNEL__FETCH_REQUEST__INIT;
    body.replica_id = -1;
    if (opts) {
        body.max_wait_ms = opts->max_wait_ms;
        body.min_bytes = opts->min_bytes;
        body.max_bytes = opts->max_bytes;
    }
    body.n_partitions = n;
    body.partitions = fpp;
    IT_REQUEST(h, FETCH, fetch, &body);
    rc = it_conn_send(c, &h, NULL, 0, cid);
out:
    free(fp);
    free(fpp);
    return rc;
}

int it_fetch(it_conn *c, const it_fetch_part *parts, size_t n, const it_fetch_opts *opts,
             it_resp *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t cid;
    int rc = it_fetch_send(c, parts, n, opts, &cid);
    if (rc < 0)
        return rc;
    int timeout = IT_DEFAULT_TIMEOUT_MS + (opts ? (int)opts->max_wait_ms : 0);
    rc = it_conn_recv(c, RUNNEL__API__FETCH, out, timeout);
    if (rc == 0 && out->hdr->correlation_id != cid) {
        it_resp_free(out);
        rc = -EPROTO;
    }
    return rc;
}

void it_fetch_data(const it_resp *r, size_t i, const uint8_t **data, size_t *len)
{
    const Runnel__FetchResponse *f = r->hdr->fetch;
    size_t off = 0;
    for (size_t k = 0; k < i; k++)
        off += f->partitions[k]->bytes_len;
    *data = r->payload + off;
    *len = f->partitions[i]->bytes_len;
}

int it_list_offsets(it_conn *c, const char *topic, int32_t partition, int64_t timestamp,
                    int64_t *offset, int64_t *found_ts)
{
    Runnel__ListOffsetsPartition lp = RUNNEL__LIST_OFFSETS_PARTITION__INIT;
    Runnel__ListOffsetsPartition *lpp = &lp;
    lp.topic = (char *)topic;
    lp.partition = partition;
    lp.timestamp = timestamp;
    Runnel__ListOffsetsRequest body = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    body.n_partitions = 1;
    body.partitions = &lpp;
    IT_REQUEST(h, LIST_OFFSETS, list_offsets, &body);
    it_resp r;
    int rc = it_call(c, &h, NULL, 0, &r);
    if (rc < 0)
        return rc;
    if (r.hdr->error_code)
        rc = (int)r.hdr->error_code;
    else if (!r.hdr->list_offsets || r.hdr->list_offsets->n_partitions != 1)
        rc = -EPROTO;
    else {
        Runnel__ListOffsetsPartitionResponse *p = r.hdr->list_offsets->partitions[0];
        rc = (int)p->error_code;
        if (offset)
            *offset = p->offset;
        if (found_ts)
            *found_ts = p->timestamp;
    }
    it_resp_free(&r);
    return rc;
}

/* ---- Record batches ------------------------------------------------------------- */

int it_batch_make(uint8_t **out, size_t *len, const char *tag, int n, int64_t ts)
{
    rn_batch_builder *bb;
    int rc = rn_batch_builder_new(&bb, NULL);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n && rc == 0; i++) {
        char v[256];
        int vl = snprintf(v, sizeof(v), "%s-%d", tag, i);
        rc = rn_batch_builder_add(bb, ts, NULL, 0, v, (size_t)vl, NULL, 0);
    }
    if (rc == 0)
        rc = rn_batch_builder_finish(bb, out, len);
    rn_batch_builder_free(bb);
    return rc;
}

/* ---- Broker processes -------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int it_broker_init(it_broker *b, const char *const *args)
{
    memset(b, 0, sizeof(*b));
    b->status = -1;
    snprintf(b->host, sizeof(b->host), "127.0.0.1");
    snprintf(b->root, sizeof(b->root), "/tmp/rn-it-XXXXXX");
    if (!mkdtemp(b->root))
        return -errno;
    snprintf(b->data_dir, sizeof(b->data_dir), "%s/data", b->root);
    snprintf(b->log_path, sizeof(b->log_path), "%s/runneld.log", b->root);
    for (int i = 0; args && args[i]; i++) {
        if (b->n_args == IT_MAX_ARGS)
            return -E2BIG;
        b->args[b->n_args] = strdup(args[i]);
        if (!b->args[b->n_args])
            return -ENOMEM;
        b->n_args++;
    }
    /* Debug level: "partition log opened" of a clean start is a debug line,
     * and the tests read it to prove no recovery scan ran. */
    return it_broker_setenv(b, "RUNNEL_LOG_LEVEL=debug");
}

int it_broker_setenv(it_broker *b, const char *kv)
{
    if (b->n_env == (int)(sizeof(b->env) / sizeof(b->env[0])))
        return -E2BIG;
    b->env[b->n_env] = strdup(kv);
    if (!b->env[b->n_env])
        return -ENOMEM;
    b->n_env++;
    return 0;
}

/* A port nobody listens on right now. runneld binds it a moment later; the
 * small race with other processes is retried by it_broker_start. */
static int free_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        rc = -errno;
    else
        *port = ntohs(sa.sin_port);
    close(fd);
    return rc;
}

static void child_exec(it_broker *b, pid_t parent)
{
    /* Die with the test process, whatever happens to it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_RDONLY);
    int log = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null < 0 || log < 0)
        _exit(127);
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    for (int i = 0; i < b->n_env; i++)
        putenv(b->env[i]);
    const char *bin = getenv("RUNNELD");
    if (!bin || !*bin)
        bin = IT_RUNNELD;
    char listen[64];
    snprintf(listen, sizeof(listen), "%s:%u", b->host, b->port);
    char *argv[IT_MAX_ARGS + 8];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--data-dir";
    argv[n++] = b->data_dir;
    argv[n++] = "--listen";
    argv[n++] = listen;
    /* Its own HTTP port too, unless the test chose one: brokers of parallel
     * tests (and a developer's own runneld) must not meet on 9780. */
    bool have_http = false;
    for (int i = 0; i < b->n_args; i++)
        have_http |= strcmp(b->args[i], "--http") == 0;
    char http[64];
    uint16_t http_port;
    if (!have_http && free_port(&http_port) == 0) {
        snprintf(http, sizeof(http), "%s:%u", b->host, http_port);
        argv[n++] = "--http";
        argv[n++] = http;
    }
    for (int i = 0; i < b->n_args; i++)
        argv[n++] = b->args[i];
    argv[n] = NULL;
    execv(bin, argv);
    dprintf(2, "it_broker: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
}

bool it_broker_alive(it_broker *b)
{
    if (!b->pid)
        return false;
    int st;
    pid_t r = waitpid(b->pid, &st, WNOHANG);
    if (r == b->pid) {
        b->status = st;
        b->pid = 0;
        return false;
    }
    return true;
}

/* A broker that answers, not merely a socket that accepts: an ApiVersions
 * round trip. */
static bool broker_answers(const it_broker *b)
{
    it_conn *c;
    if (it_conn_open(&c, b->host, b->port, 200) < 0)
        return false;
    Runnel__ApiVersionsRequest body = RUNNEL__API_VERSIONS_REQUEST__INIT;
    IT_REQUEST(h, API_VERSIONS, api_versions, &body);
    uint32_t cid;
    it_resp r;
    bool ok = it_conn_send(c, &h, NULL, 0, &cid) == 0 &&
              it_conn_recv(c, RUNNEL__API__API_VERSIONS, &r, 1000) == 0;
    if (ok) {
        ok = r.hdr->correlation_id == cid && r.hdr->error_code == 0;
        it_resp_free(&r);
    }
    it_conn_close(c);
    return ok;
}

/* After a kill -9 the old broker's listening socket can outlive its process
 * for a moment (the kernel tears the io_uring instance down asynchronously,
 * and the multishot accept holds the socket): it still completes handshakes,
 * and with SO_REUSEPORT the new broker would share the port with it. Wait
 * until the port refuses connections before starting again. */
static int wait_port_free(const it_broker *b, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        it_conn *c;
        int rc = it_conn_open(&c, b->host, b->port, 200);
        if (rc == -ECONNREFUSED)
            return 0;
        if (rc == 0)
            it_conn_close(c);
        if (it_now_ms() >= deadline)
            return -EADDRINUSE;
        usleep(10 * 1000);
    }
}

int it_broker_start(it_broker *b, int timeout_ms)
{
    if (b->pid)
        return -EBUSY;
    bool first = b->port == 0;
    if (!first) {
        int rc = wait_port_free(b, timeout_ms);
        if (rc < 0)
            return rc;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        if (first) {
            int rc = free_port(&b->port);
            if (rc < 0)
                return rc;
        }
        pid_t parent = getpid();
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            return -errno;
        if (pid == 0)
            child_exec(b, parent);
        b->pid = pid;
        int64_t deadline = it_now_ms() + timeout_ms;
        while (it_now_ms() < deadline) {
            if (!it_broker_alive(b))
                break;
            if (broker_answers(b))
                return 0;
            usleep(10 * 1000);
        }
        if (b->pid) {
            int st;
            it_broker_stop(b, SIGKILL, 5000, &st);
            return -ETIMEDOUT;
        }
        /* It exited: a port taken in the meantime is worth another try on a
         * first start; anything else is the test's to report. */
        if (!first || !it_broker_log_contains(b, 0, "cannot listen"))
            return -ECHILD;
    }
    return -ECHILD;
}

int it_broker_stop(it_broker *b, int sig, int timeout_ms, int *status)
{
    if (!b->pid)
        return -ESRCH;
    kill(b->pid, sig);
    int64_t deadline = it_now_ms() + timeout_ms;
    int rc = 0;
    for (;;) {
        int st;
        pid_t r = waitpid(b->pid, &st, WNOHANG);
        if (r == b->pid) {
            b->status = st;
            break;
        }
        if (r < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        if (it_now_ms() >= deadline) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &st, 0);
            b->status = st;
            rc = -ETIMEDOUT;
            break;
        }
        usleep(2000);
    }
    b->pid = 0;
    if (status)
        *status = b->status;
    return rc;
}

void it_broker_destroy(it_broker *b)
{
    if (b->pid)
        it_broker_stop(b, SIGKILL, 5000, NULL);
    if (b->root[0] && !getenv("IT_KEEP_DIRS"))
        nftw(b->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < b->n_args; i++)
        free(b->args[i]);
    for (int i = 0; i < b->n_env; i++)
        free(b->env[i]);
    memset(b, 0, sizeof(*b));
}

long it_broker_rss_kib(const it_broker *b)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)b->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    long kib = -ENOENT;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

int it_broker_connect(const it_broker *b, it_conn **out)
{
    return it_conn_open(out, b->host, b->port, IT_DEFAULT_TIMEOUT_MS);
}

/* The whole log file, NUL-terminated, or NULL. */
static char *read_log(const it_broker *b, size_t *len)
{
    FILE *f = fopen(b->log_path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (cap - n < 4097) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

void it_broker_dump_log(const it_broker *b, size_t max_bytes)
{
    size_t len;
    char *log = read_log(b, &len);
    if (!log)
        return;
    size_t from = len > max_bytes ? len - max_bytes : 0;
    fprintf(stderr, "---- %s (last %zu bytes) ----\n%s\n---- end ----\n", b->log_path, len - from,
            log + from);
    free(log);
}

bool it_broker_log_contains(const it_broker *b, size_t from, const char *needle)
{
    size_t len;
    char *log = read_log(b, &len);
    bool found = log && from <= len && strstr(log + from, needle);
    free(log);
    return found;
}

size_t it_broker_log_size(const it_broker *b)
{
    struct stat st;
    return stat(b->log_path, &st) == 0 ? (size_t)st.st_size : 0;
}
