/*
 * fuzz_config.c — libFuzzer target for the broker's properties reader and
 * settings table (broker/config.c): `runneld --config FILE`, `--override k=v`
 * and a topic's `-c k=v` configs all end in the same setters.
 *
 * The input is split at its first NUL: before it, a properties file (written to
 * a memfd so the real file reader with its size and line limits runs); after
 * it, "k=v" overrides one per line, each also tried as a topic setting. A
 * config the reader accepted must pass its own dump without error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load_as_file(rn_config *c, const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-config", 0);
    if (fd < 0)
        return;
    if (size == 0 || write(fd, data, size) == (ssize_t)size) {
        char path[64], err[512];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        rn_config_load_file(c, path, err, sizeof(err));
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t file_len = nul ? (size_t)(nul - data) : size;

    rn_config *c = malloc(sizeof(*c));
    if (!c)
        return 0;
    rn_config_default(c);
    load_as_file(c, data, file_len);

    if (nul) {
        const char *p = (const char *)nul + 1, *end = (const char *)data + size;
        while (p < end) {
            const char *eol = memchr(p, '\n', (size_t)(end - p));
            size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
            char *kv = strndup(p, n);
            if (!kv)
                break;
            char err[512];
            rn_config_set_kv(c, kv, err, sizeof(err));
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                rn_log_config lc = c->log;
                rn_topic_config_set(&lc, kv, eq + 1, err, sizeof(err));
                rn_topic_config_check(&lc, err, sizeof(err));
            }
            free(kv);
            p += n + 1;
        }
    }
    char err[512];
    if (rn_config_check(c, err, sizeof(err)) == 0) {
        char *dump = malloc(1 << 16);
        if (dump && rn_config_dump(c, dump, 1 << 16) < 0)
            abort(); /* a config we accepted cannot be written back out */
        free(dump);
    }
    free(c);
    return 0;
}
