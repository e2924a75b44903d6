/*
 * sasl.c — SaslHandshake (API 17, v0–v1) and SaslAuthenticate (API 36,
 * v0–v2; v2 flexible) on a listener without SASL: a clear refusal, never a dropped
 * connection.
 *
 *   SaslHandshake    request:  mechanism string
 *                    response: error_code i16, mechanisms [string]
 *   SaslAuthenticate request:  auth_bytes bytes
 *                    response: error_code i16, error_message nullable
 *                              string, auth_bytes bytes, v1+
 *                              session_lifetime_ms i64
 *
 * The listener is PLAINTEXT: a handshake for any mechanism is answered
 * UNSUPPORTED_SASL_MECHANISM (33) with an empty list of enabled mechanisms
 * (librdkafka: "Broker: Unsupported SASL mechanism", naming the mechanism
 * and the broker's empty list); an authenticate is answered
 * UNSUPPORTED_SASL_MECHANISM with the message "SASL is not enabled on this
 * listener". Both leave the connection open: a client may go on in
 * plaintext. They are advertised in ApiVersions so a client configured for
 * SASL asks, and is told, rather than guessing from a missing API.
 */
#include "broker/kafka/conn.h"

#define NOT_ENABLED "SASL is not enabled on this listener"

int rn_kafka_sasl(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    bool handshake = req->h.api_key == RN_KAFKA_SASL_HANDSHAKE;
    bool fx = req->h.flexible; /* SaslAuthenticate v2 */
    if (handshake)
        (void)rn_kread_string(rd, false); /* mechanism */
    else if (fx)
        (void)rn_kread_compact_bytes(rd, false); /* auth_bytes */
    else
        (void)rn_kread_bytes(rd, false);
    if (fx)
        rn_kread_tags(rd);
    if (rd->err)
        return rd->err;
    rn_kout *o = rn_kout_new();
    if (!o) {
        rn_kreq_oom(req);
        return 0;
    }
    rn_kwriter *w = &o->w;
    rn_kafka_response_begin(w, req->h.correlation_id, fx);
    rn_kwrite_i16(w, RN_KAFKA_UNSUPPORTED_SASL_MECHANISM);
    if (handshake) {
        rn_kwrite_array(w, false, 0); /* enabled mechanisms: none */
    } else {
        rn_kwrite_str(w, fx, NOT_ENABLED);
        if (fx)
            rn_kwrite_uvarint(w, 1); /* auth_bytes: empty (compact: length + 1) */
        else
            rn_kwrite_i32(w, 0);
        if (req->h.api_version >= 1)
            rn_kwrite_i64(w, 0); /* session_lifetime_ms */
    }
    rn_kwrite_tags(w, fx);
    rn_kafka_response_end(w, 0);
    rn_kreq_answer(req, o);
    return 0;
}
