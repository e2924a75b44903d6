/*
 * test_sendq.c — the send queue shared by native and HTTP connections
 * (broker/net/sendq.c), on a real ring and a TCP connection over 127.0.0.1:
 * bytes leave in order across more items than one sendmsg carries, a
 * zero-copy send holds what it covered until its notification, and dropping
 * the queue never cuts a message whose start already left.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/net/sendq.h"

TestSuite(sendq, .timeout = 30);

typedef struct sender {
    rn_io_op op;
    rn_sendq q;
    int res; /* the send's completion's res (not its notification's) */
    unsigned n_done, n_notif;
    bool over;
} sender;

static void send_cb(rn_io_op *op, int res, uint32_t flags)
{
    sender *s = (sender *)((char *)op - offsetof(sender, op));
    if (flags & IORING_CQE_F_NOTIF) {
        s->n_notif++;
    } else {
        s->n_done++;
        s->res = res;
    }
    s->over = rn_sendq_complete(&s->q, res, flags);
}

/* A connected TCP pair over 127.0.0.1 (zero copy needs a real TCP socket). */
static void tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(listen(l, 1) == 0);
    cr_assert(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(connect(fds[0], (struct sockaddr *)&a, sizeof(a)) == 0);
    fds[1] = accept(l, NULL, NULL);
    cr_assert(fds[1] >= 0);
    close(l);
}

static rn_out *item(const char *text, bool boundary)
{
    rn_out *o = rn_out_new(strlen(text));
    cr_assert(o);
    memcpy(o->data, text, strlen(text));
    o->boundary = boundary;
    return o;
}

static void read_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        cr_assert(n > 0, "read: %zd", n);
        got += (size_t)n;
    }
}

/* 200 items (more than the 64 iovecs of one sendmsg) arrive whole and in
 * order, and the queue's byte count goes back to zero. */
Test(sendq, many_items_leave_in_order)
{
    rn_io *io;
    cr_assert(rn_io_new(&io, 64) == 0);
    int fds[2];
    tcp_pair(fds);
    sender s = {0};
    rn_sendq_init(&s.q);
    char expect[200 * 8 + 1] = "";
    for (int i = 0; i < 200; i++) {
        char t[16];
        snprintf(t, sizeof(t), "<%05d>", i);
        strcat(expect, t);
        rn_sendq_push(&s.q, item(t, true));
    }
    cr_assert_eq(s.q.bytes, strlen(expect));
    unsigned sends = 0;
    while (s.q.head && sends < 100) {
        cr_assert(rn_sendq_start(&s.q, io, &s.op, send_cb, fds[0], 0));
        cr_assert_not(rn_sendq_start(&s.q, io, &s.op, send_cb, fds[0], 0), "one send at a time");
        cr_assert(rn_io_run(io, 1) >= 1);
        cr_assert(s.over);
        cr_assert_gt(s.res, 0);
        sends++;
    }
    cr_assert_geq(sends, 4, "64 iovecs a send: %u sends", sends);
    cr_assert_eq(s.q.bytes, 0);
    char got[sizeof(expect)] = "";
    read_exact(fds[1], got, strlen(expect));
    cr_assert_str_eq(got, expect);
    rn_sendq_fini(&s.q);
    close(fds[0]);
    close(fds[1]);
    rn_io_free(io);
}

/* A zero-copy send keeps what it sent (zc_hold) until its notification and
 * starts no other send before it; the notification frees them. */
Test(sendq, zero_copy_holds_until_notification)
{
    rn_io *io;
    cr_assert(rn_io_new(&io, 64) == 0);
    int fds[2];
    tcp_pair(fds);
    sender s = {0};
    rn_sendq_init(&s.q);
    rn_sendq_push(&s.q, item("first message;", true));
    rn_sendq_push(&s.q, item("second message", true));
    cr_assert(rn_sendq_start(&s.q, io, &s.op, send_cb, fds[0], 1));
    cr_assert(s.q.zc);
    cr_assert(rn_io_run(io, 1) >= 1);
    if (s.res == -EOPNOTSUPP || s.res == -EINVAL) {
        rn_sendq_fini(&s.q);
        rn_io_free(io);
        cr_skip_test("this kernel has no IORING_OP_SENDMSG_ZC on TCP (%d)", s.res);
    }
    cr_assert_eq(s.res, 28);
    if (s.n_notif == 0) {
        cr_assert_not(s.over, "the send is not over before its notification");
        cr_assert_null(s.q.head);
        cr_assert_not_null(s.q.zc_hold, "what was sent is held for the kernel");
        cr_assert(s.q.inflight);
        rn_sendq_push(&s.q, item("third", true));
        cr_assert_not(rn_sendq_start(&s.q, io, &s.op, send_cb, fds[0], 1),
                      "no send before the notification");
        cr_assert(rn_io_run(io, 1) >= 1);
    }
    cr_assert_eq(s.n_notif, 1);
    cr_assert(s.over);
    cr_assert_null(s.q.zc_hold);
    cr_assert_not(s.q.inflight);
    char got[29] = "";
    read_exact(fds[1], got, 28);
    cr_assert_str_eq(got, "first message;second message");
    rn_sendq_fini(&s.q);
    close(fds[0]);
    close(fds[1]);
    rn_io_free(io);
}

/* Dropping the queue keeps the rest of a message whose start already left
 * (up to its boundary) and drops every whole message after it. */
Test(sendq, drop_keeps_a_started_message)
{
    rn_io *io;
    cr_assert(rn_io_new(&io, 64) == 0);
    int fds[2];
    tcp_pair(fds);
    sender s = {0};
    rn_sendq_init(&s.q);
    rn_sendq_push(&s.q, item("frame-1a ", false)); /* a message's first part */
    cr_assert(rn_sendq_start(&s.q, io, &s.op, send_cb, fds[0], 0));
    cr_assert(rn_io_run(io, 1) >= 1);
    cr_assert_eq(s.res, 9);
    cr_assert_not(s.q.sent_boundary);
    rn_sendq_push(&s.q, item("frame-1b ", true)); /* its end */
    rn_sendq_push(&s.q, item("frame-2 ", true));
    rn_sendq_push(&s.q, item("frame-3", true));
    rn_sendq_drop(&s.q, true);
    cr_assert_eq(s.q.bytes, 9, "only the end of frame 1 stays: %zu", s.q.bytes);
    cr_assert_eq(s.q.head, s.q.tail);
    /* Closing drops everything, started or not. */
    rn_sendq_drop(&s.q, false);
    cr_assert_null(s.q.head);
    cr_assert_null(s.q.tail);
    cr_assert_eq(s.q.bytes, 0);
    rn_sendq_fini(&s.q);
    close(fds[0]);
    close(fds[1]);
    rn_io_free(io);
}

/* With nothing started, drop empties the queue; marking a boundary on an
 * empty queue is harmless. */
Test(sendq, drop_before_any_send)
{
    rn_sendq q;
    rn_sendq_init(&q);
    rn_sendq_mark_boundary(&q);
    rn_sendq_push(&q, item("a", false));
    rn_sendq_push(&q, item("b", true));
    rn_sendq_drop(&q, true);
    cr_assert_null(q.head);
    cr_assert_eq(q.bytes, 0);
    rn_sendq_fini(&q);
}
