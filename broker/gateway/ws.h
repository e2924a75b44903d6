/*
 * ws.h — WebSocket for the gateway (internal to broker/gateway/): a sans-I/O
 * engine on wslay, the handshake, and the /ws endpoint.
 *
 * The engine never touches a socket: rn_ws_feed takes received bytes, and
 * every byte to send goes to the write callback (which must take it all), so
 * tests can feed it input split at every byte and compare exact output.
 * wslay does the framing: masking checks, fragmented messages joined, ping
 * answered with pong, close answered with close, protocol errors closed with
 * 1002 and oversized messages with 1009 (judged when their payload starts to
 * arrive). Violations of the frame layout itself (a fragmented or >125-byte
 * control frame) are closed by wslay with a close frame without a code. The
 * engine adds UTF-8 validation of text messages (1007).
 */
#ifndef RN_GATEWAY_WS_H
#define RN_GATEWAY_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/gateway/http.h"

typedef struct rn_ws rn_ws;

typedef struct rn_ws_cbs {
    /* A whole text or binary message (fragments joined); borrowed for the call. */
    void (*on_message)(void *arg, bool text, const uint8_t *data, size_t len);
    /* Bytes to send, borrowed for the call; return 0, or <0 to fail the
     * engine. A call with len 0 marks the end of a sequence of whole frames
     * (a safe place to cut the output). */
    int (*write)(void *arg, const uint8_t *data, size_t len);
} rn_ws_cbs;

/* Close codes (RFC 6455 §7.4.1). */
#define RN_WS_NORMAL         1000
#define RN_WS_GOING_AWAY     1001
#define RN_WS_PROTOCOL_ERROR 1002
#define RN_WS_INVALID_DATA   1007
#define RN_WS_POLICY         1008
#define RN_WS_TOO_BIG        1009

/* A server-side engine accepting messages up to max_message bytes.
 * Errors: -ENOMEM. */
int rn_ws_new(rn_ws **out, size_t max_message, const rn_ws_cbs *cbs, void *arg);
void rn_ws_free(rn_ws *ws);

/* Feed received bytes (borrowed). Messages are delivered, automatic answers
 * (pong, close) written. Returns 0, -EPROTO when the peer broke the protocol
 * (a close frame has been written; rn_ws_done is true), -ENOMEM or -EIO (a
 * write failed). */
int rn_ws_feed(rn_ws *ws, const uint8_t *data, size_t len);

/* Send one message / a ping / a close frame. Errors: -EPIPE (a close was
 * already sent), -ENOMEM, -EIO. */
int rn_ws_send(rn_ws *ws, bool text, const void *data, size_t len);
int rn_ws_ping(rn_ws *ws);
int rn_ws_close(rn_ws *ws, uint16_t code, const char *reason);

/* A close frame has been sent (nothing more may be sent). */
bool rn_ws_close_sent(const rn_ws *ws);
/* The peer sent a close frame (its code, or 1005 when it had none). */
bool rn_ws_close_received(const rn_ws *ws, uint16_t *code);
/* The conversation is over: close sent and (close received or the peer broke
 * the protocol). The socket may be closed once the output is written. */
bool rn_ws_done(const rn_ws *ws);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)),
 * 28 characters + NUL into out. Errors: -EINVAL when the key is not the
 * base64 of 16 bytes. */
int rn_ws_accept_key(const char *key, char out[29]);

/* /ws: check the upgrade request and turn c into a WebSocket (101), or
 * answer an HTTP error (400, 403, 426). */
void rn_ws_upgrade(rn_http_conn *c, rn_http_request *req);

#endif
