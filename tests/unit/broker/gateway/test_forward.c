/*
 * test_forward.c — the gateways' leader links (broker/gateway/forward.c)
 * against fake leaders on 127.0.0.1: one that answers well, one whose answer
 * is bigger than asked, one that sends bytes that are no frame, one that
 * closes, one that never answers (the deadline cuts the link), none at all
 * (connection refused, then the fast-failure pause), and a full queue. Every
 * accepted job ends exactly once, with an error that names the broker.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/gateway/forward.h"
#include "protocol/errors.h"
#include "protocol/frame.h"

TestSuite(forward, .timeout = 60);

/* ---- A fake leader ------------------------------------------------------------------------ */

enum mode { GOOD, OVERSIZED, GARBAGE, CLOSE, SILENT, ANSWER_THEN_CLOSE };

typedef struct fake {
    int lfd, port;
    enum mode mode;
    pthread_t th;
    int conns;  /* accepted so far */
    int closed; /* connections closed so far */
} fake;

static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One request frame: its correlation id and api, or -1 when the peer went. */
static int read_request(int fd, uint32_t *cid, int *api)
{
    uint8_t pre[8];
    if (read_full(fd, pre, 8) < 0)
        return -1;
    uint32_t flen = ntohl(*(uint32_t *)pre), hlen = ntohl(*(uint32_t *)(pre + 4));
    uint8_t *rest = malloc(flen - 4);
    if (read_full(fd, rest, flen - 4) < 0) {
        free(rest);
        return -1;
    }
    Runnel__RequestHeader *h = runnel__request_header__unpack(NULL, hlen, rest);
    free(rest);
    if (!h)
        return -1;
    *cid = h->correlation_id;
    *api = h->api;
    runnel__request_header__free_unpacked(h, NULL);
    return 0;
}

static void answer(int fd, uint32_t cid, enum mode mode)
{
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = cid;
    Runnel__FetchPartitionResponse e = RUNNEL__FETCH_PARTITION_RESPONSE__INIT, *ep = &e;
    e.topic = "t";
    e.partition = 0;
    Runnel__FetchResponse fr = RUNNEL__FETCH_RESPONSE__INIT;
    fr.n_partitions = 1;
    fr.partitions = &ep;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH;
    h.fetch = &fr;
    size_t plen = mode == OVERSIZED ? 4096 : 16;
    e.bytes_len = (uint32_t)plen;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_frame_encode_alloc(&h.base, plen, &buf, &len), 0);
    uint8_t *payload = malloc(plen);
    memset(payload, 'r', plen);
    if (write(fd, buf, len) != (ssize_t)len || write(fd, payload, plen) != (ssize_t)plen) {
        /* The link went; the test sees it from the other side. */
    }
    free(buf);
    free(payload);
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        __atomic_add_fetch(&f->conns, 1, __ATOMIC_SEQ_CST);
        uint32_t cid;
        int api;
        while (read_request(fd, &cid, &api) == 0) {
            if (f->mode == GOOD || f->mode == OVERSIZED) {
                answer(fd, cid, f->mode);
            } else if (f->mode == ANSWER_THEN_CLOSE) {
                answer(fd, cid, GOOD);
                break;
            } else if (f->mode == GARBAGE) {
                /* A frame length below the minimum: no frame at all. */
                const uint8_t junk[8] = {0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef};
                if (write(fd, junk, sizeof(junk)) < 0)
                    break;
            } else if (f->mode == CLOSE) {
                break;
            } /* SILENT: read on, answer nothing */
        }
        close(fd);
        __atomic_add_fetch(&f->closed, 1, __ATOMIC_SEQ_CST);
    }
}

static void fake_start(fake *f, enum mode mode)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(f->lfd, 16), 0);
    socklen_t sl = sizeof(a);
    getsockname(f->lfd, (struct sockaddr *)&a, &sl);
    f->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
    shutdown(f->lfd, SHUT_RDWR);
    close(f->lfd);
    pthread_join(f->th, NULL);
}

/* ---- Jobs and their ends ------------------------------------------------------------------ */

typedef struct ends {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    rn_gw_fwd_job *done[2048];
} ends;

static ends E = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};

static void on_done(rn_gw_fwd_job *j)
{
    pthread_mutex_lock(&E.lock);
    E.done[E.n++] = j;
    pthread_cond_broadcast(&E.cond);
    pthread_mutex_unlock(&E.lock);
}

/* Wait (bounded) until n jobs have ended. */
static void wait_ends(int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&E.lock);
    while (E.n < n)
        if (pthread_cond_timedwait(&E.cond, &E.lock, &until) == ETIMEDOUT)
            break;
    int got = E.n;
    pthread_mutex_unlock(&E.lock);
    cr_assert_geq(got, n, "%d jobs ended, %d expected", got, n);
}

static void ends_reset(void)
{
    for (int i = 0; i < E.n; i++)
        rn_gw_fwd_job_free(E.done[i]);
    E.n = 0;
}

static int port_of_7;

/* Broker 7 is the fake leader; every other id is unknown. */
static int resolve(void *arg, int32_t broker, char *hp, size_t len, char *err, size_t errlen)
{
    (void)arg;
    if (broker != 7) {
        snprintf(err, errlen, "broker %d is not registered", broker);
        return -EHOSTUNREACH;
    }
    snprintf(hp, len, "127.0.0.1:%d", port_of_7);
    return 0;
}

static rn_gw_fwd_job *job(int32_t broker, uint64_t timeout_ms, size_t max_answer)
{
    rn_gw_fwd_job *j = calloc(1, sizeof(*j));
    Runnel__FetchPartition fp = RUNNEL__FETCH_PARTITION__INIT, *fpp = &fp;
    fp.topic = "t";
    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.n_partitions = 1;
    fr.partitions = &fpp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__FETCH;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
    h.fetch = &fr;
    j->req_hdr_len = runnel__request_header__get_packed_size(&h);
    j->req_hdr = malloc(j->req_hdr_len);
    runnel__request_header__pack(&h, j->req_hdr);
    j->broker = broker;
    j->deadline_ns = rn_now_ns() + timeout_ms * 1000000ull;
    j->max_answer = max_answer;
    j->done = on_done;
    return j;
}

static rn_gw_fwd *fwd_for(fake *f, enum mode mode)
{
    fake_start(f, mode);
    port_of_7 = f->port;
    ends_reset();
    rn_gw_fwd *fw;
    cr_assert_eq(rn_gw_fwd_new(&fw, resolve, NULL), 0);
    return fw;
}

static void submit_ok(rn_gw_fwd *fw, rn_gw_fwd_job *j)
{
    char err[256];
    cr_assert_eq(rn_gw_fwd_submit(fw, j, err, sizeof(err)), 0, "%s", err);
}

/* ---- Tests -------------------------------------------------------------------------------- */

/* A good leader: the answer comes back packed, payload copied, many jobs
 * pipelined on one connection. */
Test(forward, good_answers)
{
    fake f;
    rn_gw_fwd *fw = fwd_for(&f, GOOD);
    for (int i = 0; i < 50; i++)
        submit_ok(fw, job(7, 10000, 1024));
    wait_ends(50);
    for (int i = 0; i < 50; i++) {
        rn_gw_fwd_job *j = E.done[i];
        cr_assert_eq(j->err, 0, "%s", j->errmsg);
        cr_assert_eq(j->ans_payload_len, 16);
        cr_assert_arr_eq(j->ans_payload, "rrrrrrrrrrrrrrrr", 16);
        Runnel__ResponseHeader *h =
            runnel__response_header__unpack(NULL, j->ans_hdr_len, j->ans_hdr);
        cr_assert_not_null(h);
        cr_assert_eq(h->fetch->partitions[0]->bytes_len, 16);
        runnel__response_header__free_unpacked(h, NULL);
    }
    cr_assert_eq(rn_gw_fwd_connects(fw, 7), 1);
    rn_gw_fwd_free(fw);
    fake_stop(&f);
    ends_reset();
}

/* An answer bigger than the job allows fails the job, not the process. */
Test(forward, oversized_answer)
{
    fake f;
    rn_gw_fwd *fw = fwd_for(&f, OVERSIZED);
    submit_ok(fw, job(7, 10000, 1024));
    wait_ends(1);
    cr_assert_eq(E.done[0]->err, -RN_E_INVALID_REQUEST);
    cr_assert(strstr(E.done[0]->errmsg, "leader broker 7"), "%s", E.done[0]->errmsg);
    cr_assert(strstr(E.done[0]->errmsg, "4096 bytes, more than the 1024 asked for"), "%s",
              E.done[0]->errmsg);
    cr_assert_null(E.done[0]->ans_payload);
    rn_gw_fwd_free(fw);
    fake_stop(&f);
    ends_reset();
}

/* Bytes that are no frame break the link: every job on it ends with the
 * decoder's error; the next job connects again. */
Test(forward, garbage_breaks_the_link)
{
    fake f;
    rn_gw_fwd *fw = fwd_for(&f, GARBAGE);
    submit_ok(fw, job(7, 10000, 1024));
    wait_ends(1);
    cr_assert_eq(E.done[0]->err, -RN_E_INVALID_REQUEST, "%d %s", E.done[0]->err, E.done[0]->errmsg);
    cr_assert(strstr(E.done[0]->errmsg, "leader broker 7 (127.0.0.1:"), "%s", E.done[0]->errmsg);
    f.mode = GOOD;
    submit_ok(fw, job(7, 10000, 1024));
    wait_ends(2);
    cr_assert_eq(E.done[1]->err, 0, "%s", E.done[1]->errmsg);
    cr_assert_eq(rn_gw_fwd_connects(fw, 7), 2);
    rn_gw_fwd_free(fw);
    fake_stop(&f);
    ends_reset();
}

/* A leader that closes: the job ends with the connection's error. */
Test(forward, leader_closes)
{
    fake f;
    rn_gw_fwd *fw = fwd_for(&f, CLOSE);
    submit_ok(fw, job(7, 10000, 1024));
    wait_ends(1);
    cr_assert_lt(E.done[0]->err, 0);
    cr_assert(strstr(E.done[0]->errmsg, "leader broker 7"), "%s", E.done[0]->errmsg);
    rn_gw_fwd_free(fw);
    fake_stop(&f);
    ends_reset();
}

/* A leader that never answers: the deadline cuts the link and ends the job
 * with a timeout (and the others on the link with it). */
Test(forward, silent_leader_times_out)
{
    fake f;
    rn_gw_fwd *fw = fwd_for(&f, SILENT);
    submit_ok(fw, job(7, 300, 1024));
    submit_ok(fw, job(7, 20000, 1024));
    wait_ends(2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(E.done[i]->err, -RN_E_TIMEOUT, "%d %s", E.done[i]->err, E.done[i]->errmsg);
        cr_assert(strstr(E.done[i]->errmsg, "no answer within the request's timeout"), "%s",
                  E.done[i]->errmsg);
    }
    rn_gw_fwd_free(fw);
    fake_stop(&f);
    ends_reset();
}

/* Nobody listening: connection refused, then the pause fails the next job
 * at once with the same error; an unknown broker fails with resolve's. */
Test(forward, refused_and_unknown)
{
    fake f;
    rn_gw_fwd *fw = fwd_for(&f, GOOD);
    fake_stop(&f); /* the port is closed now */
    submit_ok(fw, job(7, 10000, 1024));
    submit_ok(fw, job(7, 10000, 1024));
    submit_ok(fw, job(3, 10000, 1024));
    wait_ends(3);
    int refused = 0, unknown = 0;
    for (int i = 0; i < 3; i++) {
        refused += E.done[i]->err == -ECONNREFUSED;
        if (E.done[i]->err == -EHOSTUNREACH) {
            unknown++;
            cr_assert(strstr(E.done[i]->errmsg, "broker 3 is not registered"), "%s",
                      E.done[i]->errmsg);
        }
    }
    cr_assert_eq(refused, 2);
    cr_assert_eq(unknown, 1);
    rn_gw_fwd_free(fw);
    ends_reset();
}

/* The queue is bounded: with a leader that does not answer, the link holds
 * RN_GW_FWD_MAX_INFLIGHT in flight and RN_GW_FWD_MAX_QUEUE waiting; one more
 * is refused with -EBUSY. Freeing the forwarder ends every accepted job. */
Test(forward, queue_is_bounded)
{
    fake f;
    rn_gw_fwd *fw = fwd_for(&f, SILENT);
    int total = RN_GW_FWD_MAX_INFLIGHT + RN_GW_FWD_MAX_QUEUE;
    int accepted = 0, busy = 0;
    char err[256];
    /* Until the link has taken its in-flight share, more may be accepted:
     * submit until one is refused (bounded). */
    for (int i = 0; i < total + 64 && !busy; i++) {
        rn_gw_fwd_job *j = job(7, 60000, 1024);
        int rc = rn_gw_fwd_submit(fw, j, err, sizeof(err));
        if (rc == 0) {
            accepted++;
        } else {
            cr_assert_eq(rc, -EBUSY);
            cr_assert(strstr(err, "queue to leader broker 7 is full"), "%s", err);
            rn_gw_fwd_job_free(j);
            busy++;
        }
    }
    cr_assert_eq(busy, 1);
    cr_assert_geq(accepted, RN_GW_FWD_MAX_QUEUE);
    cr_assert_leq(accepted, total);
    rn_gw_fwd_free(fw);
    cr_assert_eq(E.n, accepted);
    for (int i = 0; i < E.n; i++)
        cr_assert_eq(E.done[i]->err, -RN_E_SHUTTING_DOWN, "%d", E.done[i]->err);
    fake_stop(&f);
    ends_reset();
}

/* A leader that closed the connection after its last answer (a restart):
 * the next job goes out on a new connection instead of failing on the dead
 * one. */
Test(forward, closed_idle_link_reconnects)
{
    fake f;
    rn_gw_fwd *fw = fwd_for(&f, ANSWER_THEN_CLOSE);
    for (int i = 1; i <= 3; i++) {
        submit_ok(fw, job(7, 10000, 1024));
        wait_ends(i);
        cr_assert_eq(E.done[i - 1]->err, 0, "job %d: %s", i, E.done[i - 1]->errmsg);
        /* Bounded wait until the fake has closed that connection. */
        for (int k = 0; k < 3000 && __atomic_load_n(&f.closed, __ATOMIC_SEQ_CST) < i; k++)
            usleep(1000);
        cr_assert_eq(__atomic_load_n(&f.closed, __ATOMIC_SEQ_CST), i);
    }
    cr_assert_eq(rn_gw_fwd_connects(fw, 7), 3);
    rn_gw_fwd_free(fw);
    fake_stop(&f);
    ends_reset();
}
