/*
 * partition_meta.h — the partition.metadata file of a partition directory:
 * which topic id the directory belongs to (as Kafka's partition.metadata).
 *
 * Topic names are reused after a delete; topic ids never are. The broker
 * adopts a partition directory only when this file names the live topic id
 * (broker/part/partitions.c), and `runnel replay` skips directories of another
 * id. The bytes, exactly (ASCII, 58 bytes):
 *
 *     version: 0\n
 *     topic_id: 8d1c5f6e-0b1a-4c55-9f0e-2f6a1b7c3d4e\n
 *
 * Pure functions: no I/O (the callers read and write the file).
 */
#ifndef RN_PROTOCOL_PARTITION_META_H
#define RN_PROTOCOL_PARTITION_META_H

#include <stddef.h>
#include <stdint.h>

#define RN_PARTITION_META_NAME "partition.metadata"
#define RN_PARTITION_META_LEN  58
#define RN_TOPIC_ID_STR_LEN    37 /* 8-4-4-4-12 hex and the NUL */

/* id as lower-case 8-4-4-4-12 hex into out (NUL-terminated). */
void rn_topic_id_str(const uint8_t id[16], char out[RN_TOPIC_ID_STR_LEN]);

/* The 36 characters at s back to an id. 0, or -RN_E_CORRUPT_FILE when len is
 * not 36 or a character is out of place. */
int rn_topic_id_parse(const char *s, size_t len, uint8_t id[16]);

/* The file's bytes for id into out (RN_PARTITION_META_LEN, no NUL). */
void rn_partition_meta_format(const uint8_t id[16], char out[RN_PARTITION_META_LEN]);

/* The id a file's bytes name: 0, or -RN_E_CORRUPT_FILE for anything but the
 * exact format above (a torn or foreign file). Reads only buf[0..len). */
int rn_partition_meta_parse(const char *buf, size_t len, uint8_t id[16]);

#endif
