/*
 * main.c — runneld: flags, start-up order, shutdown.
 *
 * Start-up order matters for durability: the data directory is locked (one
 * broker per directory), the metadata log is replayed and every partition log
 * recovered (broker/part/part_events.c opens them from the metadata listener) — all
 * before the listener opens, so no client ever sees a half-recovered log.
 * SIGTERM/SIGINT: stop accepting, finish requests in flight, then close every
 * log (flush, seal, clean-shutdown marker) and exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/coord/groups.h"
#include "broker/gateway/gateway.h"
#include "broker/kafka/kafka.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/meta/controller.h"
#include "broker/meta/quorum.h"
#include "broker/net/listen.h"
#include "broker/net/reactor.h"
#include "broker/part/fetchers.h"
#include "broker/part/partitions.h"
#include "broker/part/plant.h"
#include "storage/crash.h"
#include "storage/offload.h"
#include "storage/sys.h"

#ifndef RUNNEL_VERSION
#define RUNNEL_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(
        f, "usage: runneld [options]\n"
           "\n"
           "A Kafka-style persistent log broker. With no options it is a working\n"
           "single-node broker: data in ./runnel-data, the native protocol on\n"
           "127.0.0.1:9700, HTTP on 127.0.0.1:9780.\n"
           "\n"
           "options:\n"
           "  --data-dir DIR        where logs live (data.dir; default ./runnel-data)\n"
           "  --listen HOST:PORT    native protocol listener (listeners; default 127.0.0.1:9700)\n"
           "  --http HOST:PORT      HTTP gateway listener (http.listener; default 127.0.0.1:9780)\n"
           "  --kafka HOST:PORT     Kafka-protocol listener (kafka.listener; default off)\n"
           "  --config FILE         Kafka-style properties file (key=value lines)\n"
           "  --override KEY=VALUE  set any config key; repeatable; wins over --config\n"
           "  --reactors N          reactor threads (reactors; 0 = one per core)\n"
           "  --node-id N           this broker's id (node.id; default 1)\n"
           "  --print-config        print the effective configuration and exit\n"
           "  --version             print the version and exit\n"
           "  --help                this text\n"
           "\n"
           "examples:\n"
           "  runneld\n"
           "  runneld --data-dir /var/lib/runnel --listen 0.0.0.0:9700\n"
           "  runneld --config runnel.properties --override log.flush=interval:1000\n"
           "\n"
           "signals: SIGTERM/SIGINT stop gracefully (flush, clean-shutdown marker).\n"
           "logs: logfmt on stderr; RUNNEL_LOG_LEVEL=debug|info|warn|error.\n");
}

static int post_reactor0(void *ctx, void (*fn)(void *arg), void *arg)
{
    return rn_reactor_call(ctx, fn, arg);
}

/* The metadata quorum (DESIGN §8), when controller.quorum.voters is set:
 * the facade over it, reactor 0's inbox started early (committed batches
 * arrive through it), the quorum thread started, and reactor 0's ring run
 * until this broker has applied what the cluster had committed when it
 * found the leader, so what follows (the sweep, __offsets) sees the
 * cluster's topics. Returns 0, 1 when there are no voters, 2 when a signal
 * stopped the wait, or -1 (logged). */
static int open_cluster(rn_broker *b)
{
    rn_voter voters[RN_MAX_VOTERS];
    char err[512] = "";
    int n = rn_config_parse_voters(b->cfg.quorum_voters, voters, RN_MAX_VOTERS, err, sizeof(err));
    if (n <= 0)
        return n == 0 ? 1 : -1;
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof(dir), "%s/%s", b->cfg.data_dir, RN_METADATA_DIR_NAME);
    /* The Kafka listener goes into this broker's registration, so Kafka
     * Metadata on any broker can list it. */
    char kafka_ep[256] = "";
    if (b->cfg.kafka[0])
        (void)rn_kafka_advertised(b->cfg.kafka, kafka_ep, sizeof(kafka_ep));
    rn_quorum_config qc = {
        .node_id = b->cfg.node_id,
        .voters = voters,
        .n_voters = n,
        .listener = b->cfg.controller_listener,
        .dir = dir,
        .advertised = b->cfg.advertised_listener[0] ? b->cfg.advertised_listener : b->cfg.listen,
        .kafka_advertised = kafka_ep,
        .session_timeout_ms = b->cfg.broker_session_timeout_ms,
        .heartbeat_interval_ms = b->cfg.broker_heartbeat_interval_ms,
        .election_timeout_ms = b->cfg.quorum_election_timeout_ms,
        .fetch_timeout_ms = b->cfg.quorum_fetch_timeout_ms,
        .snapshot_bytes = b->cfg.metadata_snapshot_bytes,
        .post = post_reactor0,
        .post_ctx = &b->reactors[0],
    };
    int rc = rn_quorum_new(&b->quorum, &qc, err, sizeof(err));
    /* The follower fetchers before metadata: the first topics applied
     * already hand partitions to them (part/roles.c). */
    if (rc == 0)
        rc = rn_fetchers_new(&b->fetchers, b);
    if (rc == 0)
        rc = rn_metadata_open_cluster(&b->md, b->reactors[0].io, b->cfg.data_dir, b->cfg.node_id,
                                      b->quorum, rn_partitions_on_metadata, b, err, sizeof(err));
    if (rc == 0) {
        rn_controller_config cc = {.auto_rebalance = b->cfg.auto_leader_rebalance,
                                   .interval_ms = b->cfg.leader_imbalance_check_ms};
        rc = rn_controller_new(&b->controller, b->md, b->quorum, &cc);
        if (rc < 0)
            snprintf(err, sizeof(err), "out of memory");
    }
    if (rc == 0) {
        rn_inbox_start(&b->reactors[0].inbox, b->reactors[0].io);
        rc = rn_quorum_start(b->quorum, err, sizeof(err));
    }
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "metadata quorum failed to start", "err=%s msg=\"%s\"", rn_errname(rc),
                  err);
        return -1;
    }
    rn_logfmt(RN_INFO, "waiting for the metadata quorum", "voters=%s", b->cfg.quorum_voters);
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    while (!rn_quorum_caught_up(b->quorum)) {
        /* The reactors block these for their signalfd: look for them here. */
        struct timespec zero = {0, 0};
        if (b->reactors[0].stopping || sigtimedwait(&stop_sigs, NULL, &zero) > 0) {
            rn_logfmt(RN_WARN, "stopped while waiting for the metadata quorum", NULL);
            return 2;
        }
        rc = rn_io_run(b->reactors[0].io, 1);
        if (rc < 0 && rc != -EINTR && rc != -ETIME) {
            rn_logfmt(RN_ERROR, "io_uring failed while waiting for the quorum", "err=%s",
                      rn_errname(rc));
            return -1;
        }
    }
    rn_quorum_status st;
    rn_quorum_status_get(b->quorum, &st);
    rn_logfmt(RN_INFO, "metadata caught up", "leader=%d epoch=%d applied=%" PRId64, st.leader,
              st.epoch, st.applied);
    rn_metadata_caught_up(b->md); /* the partitions of the state it ends in open now */
    return 0;
}

/* mkdir -p */
static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* What the process limits hold, reported once at start (one log line, a
 * warning when max.partitions is more) and handed to metadata so a create
 * that cannot fit is refused before anything is written. An open partition
 * holds one descriptor (its active segment; inactive segments keep only
 * their mappings) and at least three mappings (segment, offset and time
 * index). Descriptors: 64 for the broker's own files and rings, and up to
 * half of the rest for connections (max.connections); mappings: 1024 for
 * libraries, stacks and rings. */
static void check_process_limits(rn_broker *b)
{
    struct rlimit rl;
    int64_t nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                         ? (int64_t)rl.rlim_cur
                         : INT32_MAX;
    int64_t max_maps = -1;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        long long v;
        if (fscanf(f, "%lld", &v) == 1 && v > 0)
            max_maps = v;
        fclose(f);
    }
    int64_t conns = b->cfg.max_connections < nofile / 2 ? b->cfg.max_connections : nofile / 2;
    int64_t fit_fds = nofile - 64 - conns;
    int64_t fit_maps = max_maps < 0 ? INT64_MAX : (max_maps - 1024) / 3;
    if (fit_fds < 0)
        fit_fds = 0;
    if (fit_maps < 0)
        fit_maps = 0;
    rn_metadata_limits l = {.max_per_topic = b->cfg.max_partitions_per_topic,
                            .max_total = b->cfg.max_partitions};
    if (fit_fds <= fit_maps) {
        l.fit = fit_fds;
        snprintf(l.fit_why, sizeof(l.fit_why),
                 "RLIMIT_NOFILE %lld: one descriptor per partition after 64 for the broker and "
                 "%lld for connections",
                 (long long)nofile, (long long)conns);
    } else {
        l.fit = fit_maps;
        snprintf(l.fit_why, sizeof(l.fit_why),
                 "vm.max_map_count %lld: three mappings per partition after 1024",
                 (long long)max_maps);
    }
    rn_metadata_set_limits(b->md, &l);
    bool short_ = b->cfg.max_partitions > l.fit;
    rn_logfmt(short_ ? RN_WARN : RN_INFO,
              short_ ? "max.partitions is more than the process limits hold" : "partition limits",
              "max_partitions=%d max_partitions_per_topic=%d partitions_fit=%lld nofile=%lld "
              "max_map_count=%lld",
              b->cfg.max_partitions, b->cfg.max_partitions_per_topic, (long long)l.fit,
              (long long)nofile, (long long)max_maps);
}

enum {
    OPT_DATA = 1000,
    OPT_LISTEN,
    OPT_HTTP,
    OPT_KAFKA,
    OPT_CONFIG,
    OPT_OVERRIDE,
    OPT_REACTORS,
    OPT_NODE,
    OPT_PRINT,
    OPT_VERSION,
    OPT_HELP
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"http", required_argument, NULL, OPT_HTTP},
        {"kafka", required_argument, NULL, OPT_KAFKA},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"override", required_argument, NULL, OPT_OVERRIDE},
        {"reactors", required_argument, NULL, OPT_REACTORS},
        {"node-id", required_argument, NULL, OPT_NODE},
        {"print-config", no_argument, NULL, OPT_PRINT},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, OPT_HELP},
        {0},
    };
    rn_logfmt_init();
    static rn_broker broker;
    rn_broker *b = &broker;
    rn_config_default(&b->cfg);
    char err[512] = "";
    bool print = false;

    /* The file first, so flags given in any order win over it. */
    const char *config_file = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == OPT_CONFIG)
            config_file = optarg;
        else if (c == OPT_HELP) {
            usage(stdout);
            return 0;
        } else if (c == OPT_VERSION) {
            printf("runneld %s\n", RUNNEL_VERSION);
            return 0;
        } else if (c == '?' || c == ':') {
            fprintf(stderr, "runneld: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "runneld: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (config_file && rn_config_load_file(&b->cfg, config_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "runneld: %s\n", err);
        return 2;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case OPT_DATA:
            key = "data.dir";
            break;
        case OPT_LISTEN:
            key = "listeners";
            break;
        case OPT_HTTP:
            key = "http.listener";
            break;
        case OPT_KAFKA:
            key = "kafka.listener";
            break;
        case OPT_REACTORS:
            key = "reactors";
            break;
        case OPT_NODE:
            key = "node.id";
            break;
        case OPT_PRINT:
            print = true;
            break;
        case OPT_OVERRIDE:
            if (rn_config_set_kv(&b->cfg, optarg, err, sizeof(err)) < 0) {
                fprintf(stderr, "runneld: --override %s: %s\n", optarg, err);
                return 2;
            }
            break;
        default:
            break;
        }
        if (key && rn_config_set(&b->cfg, key, optarg, err, sizeof(err)) < 0) {
            fprintf(stderr, "runneld: %s\n", err);
            return 2;
        }
    }
    if (rn_config_check(&b->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "runneld: %s\n", err);
        return 2;
    }
    if (print) {
        char buf[8192];
        rn_config_dump(&b->cfg, buf, sizeof(buf));
        fputs(buf, stdout);
        return 0;
    }
    if (rn_config_parse_hostport(b->cfg.listen, b->host, sizeof(b->host), &b->port) < 0) {
        fprintf(stderr, "runneld: bad listener '%s'\n", b->cfg.listen);
        return 2;
    }
    unsigned n_reactors = b->cfg.reactors;
    if (n_reactors == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_reactors = cores > 0 ? (unsigned)cores : 1;
    }
    if (n_reactors > RN_MAX_REACTORS) {
        rn_logfmt(RN_WARN, "too many reactors, using the maximum", "reactors=%u max=%u", n_reactors,
                  RN_MAX_REACTORS);
        n_reactors = RN_MAX_REACTORS;
    }
    /* A batch is bounded by its topic's max.message.bytes, which may be above
     * the broker's default: the frame check only keeps it within the request
     * (api/produce.c checks the topic's value). */
    b->limits = (rn_frame_limits){.max_request = b->cfg.socket_request_max_bytes,
                                  .max_message = b->cfg.socket_request_max_bytes};

    raise_nofile();
    /* Test facilities (storage/crash.h), off unless the environment asks. */
    char crash_what[2 * PATH_MAX];
    int rc = rn_crash_init_from_env(crash_what, sizeof(crash_what), err, sizeof(err));
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "bad test facility setting", "detail=%s", err);
        return 1;
    }
    if (crash_what[0]) {
        char q[2 * PATH_MAX + 8];
        rn_logfmt(RN_WARN, "TEST FACILITY ON: not for production", "what=%s",
                  rn_logfmt_quote(crash_what, q, sizeof(q)));
    }
    /* Planted replication bugs (part/plant.h), for the fault suite alone. */
    char plant_what[256];
    rc = rn_plant_init_from_env(plant_what, sizeof(plant_what), err, sizeof(err));
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "bad test facility setting", "detail=%s", err);
        return 1;
    }
    if (plant_what[0]) {
        char q[2 * sizeof(plant_what) + 8];
        rn_logfmt(RN_WARN, "PLANTED BUG: this broker loses acknowledged data on purpose",
                  "plant=%s", rn_logfmt_quote(plant_what, q, sizeof(q)));
    }
    rc = mkdirs(b->cfg.data_dir);
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "cannot create data directory", "dir=%s err=%s", b->cfg.data_dir,
                  rn_errname(rc));
        return 1;
    }
    char lock_path[PATH_MAX + 16];
    if ((size_t)snprintf(lock_path, sizeof(lock_path), "%s/.lock", b->cfg.data_dir) >=
        sizeof(lock_path)) {
        rn_logfmt(RN_ERROR, "data directory path too long", "dir=%s", b->cfg.data_dir);
        return 1;
    }
    /* mkdir -p succeeds on any existing path: a regular file there must be
     * named as what it is, not blamed on another broker. */
    struct stat dst;
    if (stat(b->cfg.data_dir, &dst) < 0 || !S_ISDIR(dst.st_mode)) {
        char msg[sizeof(b->cfg.data_dir) + 64];
        snprintf(msg, sizeof(msg), "data directory %.4000s is not a directory", b->cfg.data_dir);
        rn_logfmt(RN_ERROR, msg, "dir=%s", b->cfg.data_dir);
        return 1;
    }
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
        rc = -errno;
        rn_logfmt(RN_ERROR, "data directory lock file cannot be opened", "path=%s err=%s",
                  lock_path, rn_errname(rc));
        return 1;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rn_logfmt(RN_ERROR, "data directory is in use by another runneld", "dir=%s",
                  b->cfg.data_dir);
        return 1;
    }

    rc = rn_producer_ids_open(&b->producer_ids, b->cfg.data_dir);
    /* In a cluster, ids of this broker's own (part/producer_state.h). */
    if (rc == 0 && b->cfg.quorum_voters[0])
        rn_producer_ids_set_node(&b->producer_ids, b->cfg.node_id);
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "producer id allocator failed to load", "dir=%s err=%s",
                  b->cfg.data_dir, rn_errname(rc));
        return 1;
    }

    b->n_reactors = n_reactors;
    b->reactors = calloc(n_reactors, sizeof(*b->reactors));
    if (!b->reactors)
        return 1;
    for (unsigned i = 0; i < n_reactors; i++)
        if (rn_reactor_init(&b->reactors[i], b, i) < 0)
            return 1;
    rn_self = &b->reactors[0]; /* the main thread becomes reactor 0 */
    if (!rn_offload_start())
        rn_logfmt(RN_WARN, "offload worker not started: seals and deletes run on the reactors",
                  NULL);

    uint64_t t0 = rn_now_ns();
    /* Every partition log's open syncs at the end, in one syncfs (storage/
     * sys.c): nothing is served before the listeners open below. */
    rn_sys_defer_begin();
    rc = open_cluster(b);
    if (rc < 0)
        return 1;
    if (rc == 2) { /* SIGTERM before the quorum formed: nothing is served yet */
        /* The fetcher threads are not joined: one may wait for work it
         * handed to a reactor that never runs now. They touch nothing
         * that goes below, and the process exits. */
        rn_quorum_free(b->quorum);
        rn_metadata_close(b->md);
        rn_controller_free(b->controller); /* after: closing answers its proposals */
        rn_sys_defer_end(b->cfg.data_dir);
        return 0;
    }
    if (rc == 1) /* no voters: a single node, its metadata log local */
        rc = rn_metadata_open(&b->md, b->reactors[0].io, b->cfg.data_dir, b->cfg.node_id,
                              rn_partitions_on_metadata, b, err, sizeof(err));
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "metadata log failed to open", "err=%s msg=\"%s\"", rn_errname(rc),
                  err);
        return 1;
    }
    check_process_limits(b);
    rn_metadata_set_default_rf(b->md, (int16_t)b->cfg.default_replication_factor);
    rn_metadata_set_default_min_isr(b->md, b->cfg.log.min_insync_replicas);
    /* Leftovers of deletes a crash cut short, and of topics no longer
     * live, go before anyone can create a topic of the same name. */
    rc = rn_partitions_sweep(b);
    if (rc < 0)
        rn_logfmt(RN_WARN, "leftover partition directories not all removed", "err=%s",
                  rn_errname(rc));
    unsigned n_parts = 0;
    rn_partition_table *pt = &b->reactors[0].pt;
    for (unsigned t = 0; t < pt->n_topics; t++)
        n_parts += (unsigned)pt->topics[t]->n_partitions;
    rn_logfmt(RN_INFO, "storage recovered", "topics=%u partitions=%u ms=%.1f", pt->n_topics,
              n_parts, (double)(rn_now_ns() - t0) / 1e6);

    rc = rn_groups_open(&b->groups, b, err, sizeof(err));
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "group coordinator failed to open", "err=%s msg=\"%s\"", rn_errname(rc),
                  err);
        return 1;
    }
    rc = rn_sys_defer_end(b->cfg.data_dir);
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "storage not durable after recovery", "err=%s", rn_errname(rc));
        return 1;
    }
    rn_logfmt(RN_INFO, "storage synced", "ms=%.1f", (double)(rn_now_ns() - t0) / 1e6);

    if (n_reactors == 1) {
        if (rn_reactor_listen(&b->reactors[0], b->cfg.listen) < 0)
            return 1;
    } else {
        /* One SO_REUSEPORT listener per reactor; the others get their copy
         * of the topic table before their threads start. */
        int fds[RN_MAX_REACTORS];
        if (rn_listen_open_shared("listen", b->cfg.listen, n_reactors, fds) < 0)
            return 1;
        for (unsigned i = 0; i < n_reactors; i++)
            rn_reactor_listen_fd(&b->reactors[i], fds[i]);
        if (rn_partitions_share(b) < 0) {
            rn_logfmt(RN_ERROR, "out of memory sharing the topic table", NULL);
            return 1;
        }
    }
    /* HTTP gateways (REST, SSE, WebSocket) after the native listener. An
     * address other than the default must be had; the default one may be
     * taken by another broker on the machine (then: a warning, no HTTP). */
    static rn_config defaults;
    rn_config_default(&defaults);
    bool http_required = strcmp(b->cfg.http, defaults.http) != 0;
    if (rn_gateway_listen(&b->reactors[0], b->cfg.http, http_required) < 0)
        return 1;
    if (b->reactors[0].gw)
        rn_logfmt(RN_INFO, "http listening", "http=%s", b->cfg.http);
    /* The Kafka-protocol listener (off unless asked for), on reactor 0 like
     * the gateway: its requests take the in-process path to every reactor. */
    if (b->cfg.kafka[0]) {
        if (rn_kafka_listen(&b->reactors[0], b->cfg.kafka) < 0)
            return 1;
        rn_logfmt(RN_INFO, "kafka listening", "kafka=%s port=%u", b->cfg.kafka,
                  rn_kafka_port(&b->reactors[0]));
    }
    b->ready = true;
    char flush[48];
    rn_logfmt(RN_INFO, "runneld listening",
              "version=%s listen=%s data_dir=%s node_id=%d flush=%s reactors=%u", RUNNEL_VERSION,
              b->cfg.listen, b->cfg.data_dir, b->cfg.node_id,
              rn_log_config_flush_str(&b->cfg.log, flush, sizeof(flush)), n_reactors);

    rc = rn_reactors_run(b);
    /* The fetcher threads first: the reactors they hand work to have
     * stopped (a stop ends their waits for leaders within 200 ms). */
    rn_fetchers_free(b->fetchers);
    b->fetchers = NULL;
    /* The gateways' leader links (they read the quorum's broker list). */
    rn_gateway_forward_stop(b);
    /* The quorum next: its posts to the stopped reactors are dropped, and
     * as leader it resigns so the others elect at once. */
    rn_quorum_free(b->quorum);
    b->quorum = NULL;
    /* Every reactor has stopped. Closing every log: one syncfs, then the
     * clean-shutdown markers. */
    rn_sys_defer_begin();
    rn_groups_close(b->groups);
    b->groups = NULL;
    int rc2 = rn_partitions_close_all(b);
    int rc3 = rn_metadata_close(b->md);
    rn_controller_free(b->controller); /* after: closing answers its proposals */
    b->controller = NULL;
    int rc4 = rn_sys_defer_end(b->cfg.data_dir);
    if (rc3 == 0)
        rc3 = rc4;
    for (unsigned i = 0; i < n_reactors; i++)
        rn_reactor_fini(&b->reactors[i]);
    free(b->reactors);
    close(lock_fd);
    if (rc < 0 || rc2 < 0 || rc3 < 0) {
        rn_logfmt(RN_ERROR, "shutdown with errors", "run=%s close=%s metadata=%s", rn_errname(rc),
                  rn_errname(rc2), rn_errname(rc3));
        return 1;
    }
    rn_logfmt(RN_INFO, "runneld stopped cleanly", NULL);
    return 0;
}
