/*
 * topic_name.c — the topic-name rule (see topic_name.h). Written once here
 * so the create path, the apply path and every "is it internal?" question
 * agree.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/topic_name.h"

bool rn_topic_is_internal(const char *name)
{
    return name && name[0] == '_' && name[1] == '_';
}

bool rn_topic_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t len = 0;
    for (const char *p = name; *p; p++, len++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || len >= RN_TOPIC_NAME_MAX)
            return false;
    }
    return len > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int rn_topic_name_check(const char *name, bool allow_internal, char *err, size_t errlen)
{
    if (!name)
        return rn_errf(-RN_E_INVALID_TOPIC, err, errlen, "topic name missing");
    if (!rn_topic_name_valid(name))
        return rn_errf(-RN_E_INVALID_TOPIC, err, errlen,
                       "topic name \"%.64s%s\": must be 1 to %d characters of [a-zA-Z0-9._-], "
                       "not \".\" or \"..\"",
                       name, strlen(name) > 64 ? "…" : "", RN_TOPIC_NAME_MAX);
    if (!allow_internal && rn_topic_is_internal(name))
        return rn_errf(-RN_E_INVALID_TOPIC, err, errlen,
                       "topic %s: names starting with \"__\" are reserved for internal topics",
                       name);
    if (allow_internal && !rn_topic_is_internal(name))
        return rn_errf(-RN_E_INVALID_TOPIC, err, errlen,
                       "internal topic name \"%.64s\": must start with \"__\"", name);
    if (strstr(name, RN_TOPIC_DELETED_MARK))
        return rn_errf(-RN_E_INVALID_TOPIC, err, errlen,
                       "topic %s: names containing \"%s\" are reserved for deleted partitions",
                       name, RN_TOPIC_DELETED_MARK);
    return 0;
}
