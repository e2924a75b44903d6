/*
 * topic_name.h — the one rule for topic names and internal topics, shared by
 * the broker (creates, deletes, produce, Metadata's is_internal) and the
 * tools (which hide internal topics). No I/O: it sits in protocol/, the
 * bottom layer both sides may use (DESIGN §2).
 *
 * The rule (Kafka's, plus runnel's two reservations):
 *  1. A name is 1..RN_TOPIC_NAME_MAX characters of [a-zA-Z0-9._-], and not
 *     "." or "..": it becomes a directory name <topic>-<partition>.
 *  2. Names starting with "__" are internal (__offsets,
 *     __cluster_metadata): the broker creates them; clients may not.
 *  3. No name contains RN_TOPIC_DELETED_MARK: a deleted partition's
 *     directory is renamed <topic>-<p>.deleted-… and no live topic may wear
 *     that shape.
 */
#ifndef RN_PROTOCOL_TOPIC_NAME_H
#define RN_PROTOCOL_TOPIC_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define RN_TOPIC_NAME_MAX     249
#define RN_TOPIC_DELETED_MARK ".deleted-"

/* Whether name is internal (rule 2). NULL is not. */
bool rn_topic_is_internal(const char *name);

/* Whether name is well formed (rule 1 only; what a record may carry). */
bool rn_topic_name_valid(const char *name);

/* Whether a topic may be created with this name: rules 1 and 3, and rule 2
 * as asked: allow_internal false refuses "__" names (a client's create),
 * true requires them (the broker's own topics). 0, or -RN_E_INVALID_TOPIC
 * with err (when not NULL) saying why. */
int rn_topic_name_check(const char *name, bool allow_internal, char *err, size_t errlen);

#endif
