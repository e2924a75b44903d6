/*
 * test_topic_name.c — the one topic-name rule (protocol/topic_name.h):
 * malformed names, the "__" reservation both ways, the .deleted- mark.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/topic_name.h"

static void refused(const char *name, bool allow_internal, const char *needle)
{
    char err[512] = "";
    cr_assert_eq(rn_topic_name_check(name, allow_internal, err, sizeof(err)), -RN_E_INVALID_TOPIC,
                 "\"%s\" accepted", name ? name : "(null)");
    cr_assert(strstr(err, needle), "\"%s\": message \"%s\" lacks \"%s\"", name ? name : "(null)",
              err, needle);
}

static void accepted(const char *name, bool allow_internal)
{
    char err[512] = "";
    cr_assert_eq(rn_topic_name_check(name, allow_internal, err, sizeof(err)), 0, "\"%s\": %s", name,
                 err);
}

Test(topic_name, malformed_names_are_refused)
{
    char longest[RN_TOPIC_NAME_MAX + 2];
    memset(longest, 'a', RN_TOPIC_NAME_MAX + 1);
    longest[RN_TOPIC_NAME_MAX + 1] = '\0';

    refused(NULL, false, "missing");
    refused("", false, "1 to 249 characters");
    refused(".", false, "not \".\" or \"..\"");
    refused("..", false, "not \".\" or \"..\"");
    refused("a/b", false, "[a-zA-Z0-9._-]");
    refused("a b", false, "[a-zA-Z0-9._-]");
    refused("tópico", false, "[a-zA-Z0-9._-]");
    refused("a\nb", false, "[a-zA-Z0-9._-]");
    refused(longest, false, "1 to 249 characters"); /* 250 */
    cr_assert(!rn_topic_name_valid(longest));
    longest[RN_TOPIC_NAME_MAX] = '\0'; /* 249: the longest allowed */
    accepted(longest, false);
    cr_assert(rn_topic_name_valid(longest));
    accepted("...", false);
    accepted("a.b_c-D9", false);
    /* Long names are cut in the message, not copied whole. */
    char err[128];
    memset(longest, 'b', RN_TOPIC_NAME_MAX + 1);
    cr_assert_eq(rn_topic_name_check(longest, false, err, sizeof(err)), -RN_E_INVALID_TOPIC);
    cr_assert(strstr(err, "…"), "%s", err);
    /* err may be NULL. */
    cr_assert_eq(rn_topic_name_check("", false, NULL, 0), -RN_E_INVALID_TOPIC);
}

Test(topic_name, deleted_mark_is_reserved)
{
    refused("orders.deleted-1", false, "reserved for deleted partitions");
    refused("x.deleted-", false, "reserved for deleted partitions");
    refused("__x.deleted-", true, "reserved for deleted partitions");
    accepted("orders.deleted", false);
    /* Well formed all the same: a record may carry it (apply decides). */
    cr_assert(rn_topic_name_valid("orders.deleted-1"));
}

Test(topic_name, internal_names_only_for_the_broker)
{
    cr_assert(rn_topic_is_internal("__offsets"));
    cr_assert(rn_topic_is_internal("__"));
    cr_assert_not(rn_topic_is_internal("_offsets"));
    cr_assert_not(rn_topic_is_internal("offsets__"));
    cr_assert_not(rn_topic_is_internal(""));
    cr_assert_not(rn_topic_is_internal(NULL));

    refused("__offsets", false, "reserved for internal topics");
    refused("__", false, "reserved for internal topics");
    accepted("_offsets", false);
    accepted("__offsets", true);
    accepted("__cluster_metadata", true);
    refused("offsets", true, "must start with \"__\"");
    refused("_offsets", true, "must start with \"__\"");
    refused("__a/b", true, "[a-zA-Z0-9._-]");
}
