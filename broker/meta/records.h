/*
 * records.h — short names for the metadata log's records
 * (protocol/metadata.proto), shared by the parts of broker/meta/ that read or
 * write them (image.c, snapshot.c, metadata.c, topic_changes.c, partition_changes.c). Internal to
 * broker/meta/.
 */
#ifndef RN_BROKER_META_RECORDS_H
#define RN_BROKER_META_RECORDS_H

#include "metadata.pb-c.h"

typedef Runnel__Metadata__MetadataRecord md_record;
typedef Runnel__Metadata__TopicRecord md_topic_record;
typedef Runnel__Metadata__TopicRecord__ConfigsEntry md_config_entry;
typedef Runnel__Metadata__PartitionRecord md_partition_record;
typedef Runnel__Metadata__RemoveTopicRecord md_remove_record;
typedef Runnel__Metadata__ConfigRecord md_config_record;
typedef Runnel__Metadata__PartitionCountRecord md_count_record;
typedef Runnel__Metadata__PartitionChangeRecord md_change_record;
typedef Runnel__Metadata__PartitionReassignRecord md_reassign_record;
typedef Runnel__Metadata__BrokerRecord md_broker_record;
typedef Runnel__Metadata__BrokerFenceRecord md_fence_record;

#endif
