/*
 * coordinator.c — finding a consumer group's coordinator and calling it.
 *
 * The coordinator of a group is the broker that leads the group's partition
 * of __offsets (DESIGN §6); every other broker answers its group APIs with
 * NOT_COORDINATOR. So a group request goes: FindCoordinator to any broker
 * (bootstrap failover through rn__client_call_any) → the answer's host:port
 * → the request there. The coordinator found is kept on the client (one
 * __offsets partition: one coordinator for every group a handle uses) until
 * an answer says it moved: NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
 * COORDINATOR_LOAD_IN_PROGRESS, or the connection to it failing — then it is
 * forgotten and found again, as Kafka's clients do (markCoordinatorUnknown).
 *
 * A broker without FindCoordinator (UNKNOWN_API: a single node older than
 * clusters) coordinates every group itself: any connection is used then.
 *
 * Used by group.c (the consumer's membership, commits, committed offsets)
 * and admin.c (describe, delete, list, reset of groups). Threading: the
 * handle's, like everything in rn__client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/internal.h"

bool rn__coord_retriable(int err)
{
    switch (err) {
    case -RN_E_NOT_COORDINATOR:
    case -RN_E_COORDINATOR_NOT_AVAILABLE:
    case -RN_E_COORDINATOR_LOAD_IN_PROGRESS:
    case -RN_E_TIMEOUT:
    case -RN_E_SHUTTING_DOWN:
    case -RN_E_CLOSED:
        return true;
    default:
        /* Any transport failure: the coordinator may have died or moved. */
        return err < 0 && !rn_is_rn_error(err) && err != -ENOMEM;
    }
}

void rn__coord_forget(rn__client *cl)
{
    cl->coord.known = false;
}

rn__conn *rn__coord_conn(rn__client *cl)
{
    if (!cl->coord.known)
        return NULL;
    if (cl->coord.any)
        return rn__client_conn_any(cl);
    return rn__client_conn(cl, cl->coord.host, cl->coord.port);
}

int rn__coord_find(rn__client *cl, const char *group, int timeout_ms)
{
    if (!group)
        group = "";
    if (cl->coord.known && strcmp(cl->coord.group, group) == 0)
        return 0;
    cl->coord.known = false;
    Runnel__FindCoordinatorRequest q = RUNNEL__FIND_COORDINATOR_REQUEST__INIT;
    q.group_id = (char *)group;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FIND_COORDINATOR;
    h.find_coordinator = &q;
    rn__reply r;
    int rc = rn__client_call_any(cl, &h, RUNNEL__API__FIND_COORDINATOR, timeout_ms, &r);
    if (rc < 0) {
        char m[sizeof(cl->errmsg)];
        snprintf(m, sizeof(m), "%s", cl->errmsg);
        return rn__fail(cl, rc, "group %s: find coordinator: %s", group, m);
    }
    rc = -(int)r.hdr->error_code;
    const Runnel__FindCoordinatorResponse *fc = r.hdr->find_coordinator;
    if (rc == -RN_E_UNKNOWN_API) {
        snprintf(cl->coord.group, sizeof(cl->coord.group), "%s", group);
        cl->coord.any = true;
        cl->coord.known = true;
        rn__reply_fini(&r);
        return 0;
    }
    if (rc == 0 && (!fc || !fc->host || !fc->host[0] || fc->port == 0 || fc->port > 65535))
        rc = -RN_E_COORDINATOR_NOT_AVAILABLE;
    if (rc < 0) {
        const char *m = r.hdr->error_message;
        rn__fail(cl, rc, "group %s: find coordinator: %s%s%s", group, rn_strerror(rc),
                 m && *m ? ": " : "", m && *m ? m : "");
        rn__reply_fini(&r);
        return rc;
    }
    snprintf(cl->coord.group, sizeof(cl->coord.group), "%s", group);
    snprintf(cl->coord.host, sizeof(cl->coord.host), "%s", fc->host);
    cl->coord.port = (uint16_t)fc->port;
    cl->coord.node_id = fc->node_id;
    cl->coord.any = false;
    cl->coord.known = true;
    rn__reply_fini(&r);
    return 0;
}

int rn__coord_call(rn__client *cl, const char *group, Runnel__RequestHeader *h, int api,
                   int timeout_ms, rn__reply *out)
{
    int64_t deadline = rn__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int rc = -RN_E_TIMEOUT;
    for (;;) {
        int64_t left = deadline - rn__now_ms();
        if (left <= 0)
            return rc == -RN_E_TIMEOUT
                       ? rn__fail(cl, rc, "group %s: coordinator: timed out", group ? group : "")
                       : rc;
        rc = rn__coord_find(cl, group, (int)left);
        if (rc == 0) {
            rn__conn *c = rn__coord_conn(cl);
            if (!c)
                return rn__fail(cl, -ENOMEM, "out of memory");
            rc = rn__client_call(cl, c, h, NULL, 0, api, (int)left, out);
            if (rc == 0) {
                int code = -(int)out->hdr->error_code;
                if (!rn__coord_retriable(code) || code == -RN_E_TIMEOUT)
                    return 0; /* the caller's to read */
                const char *m = out->hdr->error_message;
                rn__fail(cl, code, "group %s: %s%s%s", group ? group : "", rn_strerror(code),
                         m && *m ? ": " : "", m && *m ? m : "");
                rn__reply_fini(out);
                rc = code;
            }
        }
        if (!rn__coord_retriable(rc))
            return rc;
        rn__coord_forget(cl);
        int backoff = cl->conf->retry_backoff_ms > 0 ? cl->conf->retry_backoff_ms : 100;
        if (rn__now_ms() + backoff >= deadline)
            return rc;
        rn__client_poll(cl, backoff);
    }
}
