/*
 * part/throttle.c — the catch-up throttle of replica moves (part/throttle.h).
 *
 * A token bucket: tokens grow at the rate, up to one second's worth (an idle
 * throttle saves up no more than that, as Kafka's quota windows do), and a
 * replica may move bytes while there is at least one token. The bucket's
 * rate is the one its last caller names: moves at different rates through
 * one broker share one bucket at the rate of whichever asks (Kafka has one
 * rate per broker; here the move's own rate is that broker's rate for it).
 */
#include <time.h>

#include "broker/broker.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "broker/part/replica_state.h"
#include "broker/part/throttle.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Under t->mu. */
static void refill(rn_throttle *t, int64_t rate)
{
    int64_t now = now_ns();
    if (t->last_ns == 0) {
        t->last_ns = now;
        t->tokens = 1; /* the first read goes at once */
        return;
    }
    if (now <= t->last_ns)
        return;
    /* rate * dt without overflow: dt is capped at a second's worth. */
    int64_t dt = now - t->last_ns;
    if (dt > 1000000000)
        dt = 1000000000;
    double add = (double)rate * (double)dt / 1e9;
    double tok = (double)t->tokens + add;
    t->tokens = tok > (double)rate ? rate : (int64_t)tok;
    t->last_ns = now;
}

bool rn_throttle_allows(rn_throttle *t, int64_t rate)
{
    if (rate <= 0)
        return true;
    pthread_mutex_lock(&t->mu);
    refill(t, rate);
    bool ok = t->tokens > 0;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void rn_throttle_charge(rn_throttle *t, int64_t rate, size_t bytes)
{
    if (rate <= 0 || bytes == 0)
        return;
    pthread_mutex_lock(&t->mu);
    refill(t, rate);
    /* A debt of more than a second's worth is not kept: one huge read
     * should not stall the replica for longer than the rate says. */
    int64_t b = bytes > (size_t)INT64_MAX ? INT64_MAX : (int64_t)bytes;
    t->tokens = t->tokens - b < -rate ? -rate : t->tokens - b;
    pthread_mutex_unlock(&t->mu);
}

static bool in_target(const rn_partition *p, int32_t id)
{
    for (unsigned i = 0; i < p->n_target; i++)
        if (p->target[i] == id)
            return true;
    return false;
}

int64_t rn_throttle_leader_rate(const rn_partition *p, int32_t replica_id)
{
    if (p->n_target == 0 || !in_target(p, replica_id))
        return 0;
    if (p->rs && rn_replica_state_in_isr(p->rs, replica_id))
        return 0; /* in sync: never throttled */
    int64_t rate = p->move_throttle;
    return rate > 0 ? rate : p->reactor->b->cfg.leader_replication_throttled_rate;
}

int64_t rn_throttle_follower_rate(const rn_partition *p)
{
    if (!p->moving_in)
        return 0;
    int64_t rate = p->move_throttle;
    return rate > 0 ? rate : p->reactor->b->cfg.follower_replication_throttled_rate;
}
