/*
 * consumers.c — REST Proxy v2 consumer instances (stub while the rest is built).
 */
#include <stdlib.h>

#include "broker/gateway/consumers.h"

struct rn_consumers {
    rn_gateway *gw;
};

int rn_consumers_new(rn_consumers **out, rn_gateway *gw)
{
    rn_consumers *cs = calloc(1, sizeof(*cs));
    if (!cs)
        return -ENOMEM;
    cs->gw = gw;
    *out = cs;
    return 0;
}

void rn_consumers_free(rn_consumers *cs)
{
    free(cs);
}

void rn_consumers_tick(rn_consumers *cs, int64_t now_ms)
{
    (void)cs;
    (void)now_ms;
}

void rn_consumers_stop(rn_consumers *cs)
{
    (void)cs;
}

bool rn_consumers_idle(const rn_consumers *cs)
{
    (void)cs;
    return true;
}

void rn_consumers_dispatch(rn_consumers *cs, rn_http_conn *c, rn_http_request *req, char **seg,
                           int n)
{
    (void)cs;
    (void)req;
    (void)seg;
    (void)n;
    rn_http_respond_error(c, 404, 40400, "consumer instances are not available yet");
}
