/*
 * fuzz_kafka.c — libFuzzer target for the Kafka-protocol listener's parsing
 * (broker/kafka/codec.c, broker/kafka/apis.c): the bytes a Kafka client
 * sends to --kafka.
 *
 * The input is a byte stream cut into frames as the listener cuts it (i32
 * size, checked against a 1 MiB limit before anything is sized by it); each
 * frame body runs through rn_kafka_dry_run: the request header, the body
 * parser of its API and version (ApiVersions, Metadata, Produce, Fetch,
 * ListOffsets, CreateTopics, DeleteTopics, InitProducerId,
 * OffsetsForLeaderEpoch, CreatePartitions, DescribeConfigs, SaslHandshake,
 * SaslAuthenticate, and the group APIs: FindCoordinator, JoinGroup, SyncGroup,
 * Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
 * DeleteGroups), and the renderer of the answer, with no broker behind (every
 * native call fails as on a closed connection; every group API answers
 * COORDINATOR_NOT_AVAILABLE). Nothing may crash, leak or read out of bounds;
 * errors are expected.
 */
#include <stdint.h>
#include <stdlib.h>

#include "broker/kafka/codec.h"
#include "broker/kafka/conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    for (unsigned frames = 0; frames < 64 && size - pos >= 4; frames++) {
        int64_t n = rn_kafka_frame_size(data + pos, 1u << 20);
        if (n < 0)
            break; /* the listener closes the connection here */
        pos += 4;
        size_t len = (size_t)n <= size - pos ? (size_t)n : size - pos;
        size_t answer = 0;
        if (rn_kafka_dry_run(data + pos, len, &answer) < 0)
            break; /* malformed: closed */
        pos += len;
    }
    return 0;
}
