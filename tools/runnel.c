/*
 * runnel.c — the `runnel` command line: rpk-style subcommands with kcat's
 * flags and output (DESIGN §9).
 *
 *   runnel [-b HOST:PORT,...] [-X KEY=VALUE] COMMAND [ARGS...]
 *
 * How it fits: this file only reads the options that come before the command
 * name and dispatches; each command lives in its own file (tools/cli_*.c) and
 * talks to brokers through librunnel (clients/runnel.h) — except `replay`,
 * which reads segment files directly and needs no broker.
 *
 * Invariants (every command keeps them):
 *   1. Exit status 0 ok, 1 error (one line on stderr says what), 2 usage.
 *   2. stdout carries data only; messages and progress go to stderr, progress
 *      only when stderr is a terminal.
 *   3. `--help` works on every command and subcommand and shows examples.
 *   4. -b before or after the command name, or RUNNEL_BROKERS, picks the
 *      brokers; the command-line spelling closest to the command wins.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli_common.h"

#ifndef RUNNEL_VERSION
#define RUNNEL_VERSION RN_CLIENT_VERSION
#endif

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"topic", cli_topic, "create, list, describe, alter and delete topics"},
    {"produce", cli_produce, "write records from stdin or a file"},
    {"consume", cli_consume, "read records, print them as text, a format or JSON"},
    {"group", cli_group, "list, describe, reset and delete consumer groups"},
    {"cluster", cli_cluster, "the metadata quorum and the brokers (status)"},
    {"replay", cli_replay, "read records offline from a data directory (ndjson, csv, raw)"},
    {"bench", cli_bench, "measure produce or consume throughput and latency"},
};

static void usage(FILE *f)
{
    fputs("usage: runnel [-b HOST:PORT,...] [-X KEY=VALUE] COMMAND [ARGS...]\n"
          "\n"
          "The command line of runnel, a Kafka-style log broker. Subcommands as in\n"
          "rpk, flags and output as in kcat.\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "options:\n" CLI_CONN_HELP "  -h, --help                   this text\n"
          "  -V, --version                print the version\n"
          "\n"
          "Every command takes --help. Exit status: 0 ok, 1 error, 2 usage.\n"
          "\n"
          "examples:\n"
          "  runnel topic create orders -p 3\n"
          "  printf 'alice:hi\\nbob:yo\\n' | runnel produce orders -K :\n"
          "  runnel consume orders -e -f '%p/%o %k=%s\\n'\n"
          "  runnel consume orders -G billing      # one member of group billing\n"
          "  runnel group describe billing\n"
          "  runnel -b 10.0.0.5:9700 topic list\n"
          "  runnel replay ./runnel-data orders --format ndjson | jq .payload\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("RUNNEL_BROKERS");
    cli_global_conn.brokers = env && *env ? env : CLI_DEFAULT_BROKERS;

    int status = CLI_USAGE;
    int c;
    opterr = 0;
    /* '+': stop at the command name; the command parses the rest. */
    while ((c = getopt_long(argc, argv, "+:b:X:hV", longopts, NULL)) != -1) {
        int rc = cli_conn_opt(&cli_global_conn, c, optarg);
        if (rc < 0) {
            cli_fail(rc, "options");
            status = CLI_ERROR;
            goto out;
        }
        if (rc == 1)
            continue;
        switch (c) {
        case 'h':
            usage(stdout);
            status = CLI_OK;
            goto out;
        case 'V':
            printf("runnel %s\n", RUNNEL_VERSION);
            status = CLI_OK;
            goto out;
        case ':':
            cli_usage("option %s needs a value", argv[optind - 1]);
            goto out;
        default:
            cli_usage("unknown option %s", argv[optind - 1]);
            goto out;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        goto out;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        /* `runnel help produce` = `runnel produce --help`. */
        if (optind + 1 >= argc) {
            usage(stdout);
            status = CLI_OK;
            goto out;
        }
        name = argv[optind + 1];
        char *help_argv[] = {(char *)name, "--help", NULL};
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
            if (strcmp(commands[i].name, name) == 0) {
                cli_cmd = name;
                optind = 0;
                status = commands[i].run(2, help_argv);
                goto out;
            }
        }
    } else {
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
            if (strcmp(commands[i].name, name) == 0) {
                cli_cmd = name;
                /* A fresh getopt scan for the command: optind 0 resets GNU getopt. */
                int at = optind;
                optind = 0;
                status = commands[i].run(argc - at, argv + at);
                goto out;
            }
        }
    }
    fprintf(stderr, "runnel: unknown command '%s'\nTry 'runnel --help'.\n", name);
out:
    cli_conn_fini(&cli_global_conn);
    if (fflush(stdout) != 0 && status == CLI_OK) {
        perror("runnel: writing stdout");
        status = CLI_ERROR;
    }
    return status;
}
