/*
 * kafka/kafka.h — the Kafka-protocol listener (kafka.listener / --kafka), as
 * seen from the rest of the broker (DESIGN §5; docs/kafka.md).
 *
 * A second front door onto the same handlers: each Kafka request is parsed
 * (broker/kafka/codec.c), turned into the native request a runnel client
 * would send and run through the gateway's in-process client
 * (rn_gw_client_call → rn_request_local → rn_dispatch), so partition
 * ownership across reactors, validation and storage are the native path's
 * own. The answer is rendered back into Kafka's response; record batches are
 * Kafka's RecordBatch v2 on both sides and pass untouched (fetch data goes
 * out as slices of the segment mappings).
 *
 * The listener lives on reactor 0, as the HTTP gateway does; the reactor
 * holds a pointer (r->kafka) and makes three calls: rn_kafka_stop when it
 * starts to shut down, rn_kafka_idle in its final wait, rn_kafka_free in
 * rn_reactor_fini. Every call on the reactor's own thread.
 */
#ifndef RN_BROKER_KAFKA_KAFKA_H
#define RN_BROKER_KAFKA_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rn_reactor;

/* Open the listener on hostport, create r->kafka and start accepting.
 * Errors: -errno of socket/bind/listen, -RN_E_INVALID_CONFIG, -ENOMEM, each
 * with a log line; r->kafka stays NULL then. */
int rn_kafka_listen(struct rn_reactor *r, const char *hostport);

/* The address the Kafka listener at hostport (kafka.listener) is advertised
 * at, "host:port" into out: a wildcard or a name becomes 127.0.0.1 (clients
 * resolve "localhost" to ::1 first on some systems). 0, or -EINVAL for a
 * hostport that does not parse (out is then ""). */
int rn_kafka_advertised(const char *hostport, char *out, size_t len);

/* The port the listener is bound to (0 when there is none). */
uint16_t rn_kafka_port(const struct rn_reactor *r);

/* Stop accepting and close every connection (answers in flight are dropped:
 * a Kafka client retries on another connection). NULL-safe. */
void rn_kafka_stop(struct rn_reactor *r);
/* Nothing of the listener in flight on the ring. NULL-safe (true). */
bool rn_kafka_idle(struct rn_reactor *r);
/* Free what is left; sets r->kafka to NULL. NULL-safe. */
void rn_kafka_free(struct rn_reactor *r);

#endif
