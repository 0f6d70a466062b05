/*
 * The logging section and observability.tracing: defaults, every key read,
 * errors with their positions, and which changes a reload refuses.
 */
#include "config_test.h"

static void test_defaults(void)
{
    struct arc_config *c = must_load("yaml", MINI_YAML);
    if (!c)
        return;
    const struct arc_logging_conf *l = &c->logging;
    CHECK(!l->enabled);
    CHECK(l->file == NULL);
    CHECK(!l->to_stdout);
    CHECK_INT(l->max_size, 500ll << 20);
    CHECK_INT(l->max_files, 30);
    CHECK(l->compress);
    CHECK(l->sample == 1.0);
    CHECK_INT(l->force_on_slow, 500);
    static const int forced[] = { 401, 403, 429, 500, 502, 503, 504 };
    int n = 0;
    for (int s = 0; s < 600; s++)
        n += arc_logging_forced_status(l, s);
    CHECK_INT(n, 7);
    for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++)
        CHECK(arc_logging_forced_status(l, forced[i]));
    CHECK(!arc_logging_forced_status(l, 200));
    CHECK(!arc_logging_forced_status(l, 9999));
    CHECK_INT(l->ring_capacity, 8192);
    CHECK_INT(l->batch_bytes, 256 << 10);
    CHECK_INT(l->flush_interval, 50);
    CHECK_INT(l->drop_behind, 64 << 20);
    CHECK(c->tracing_sample == 0.01);
    arc_config_free(c);
}

static void test_values(void)
{
    struct arc_config *c = must_load("yaml", MINI_YAML
        "logging:\n"
        "  output:\n"
        "    file: /var/log/arc/access.log\n"
        "    stdout: true\n"
        "    rotation: {max_size: 10mb, max_files: 3, compress: false}\n"
        "  access: {sample: 0.25, force_on_status: [404, 599], force_on_slow: 2s}\n"
        "  redact: {headers: [Referer, User-Agent], query_params: [token]}\n"
        "  writer: {ring_capacity: 16, batch_bytes: 8kb, flush_interval: 5ms, drop_behind: 2mb}\n"
        "observability: {tracing: {sample: 1, endpoint: \"http://127.0.0.1:4318\", "
        "queue_capacity: 64, flush_interval: 200ms, timeout: 1s}}\n");
    if (!c)
        return;
    const struct arc_logging_conf *l = &c->logging;
    CHECK(l->enabled);
    CHECK_STR(l->file, "/var/log/arc/access.log");
    CHECK(l->to_stdout);
    CHECK_INT(l->max_size, 10 << 20);
    CHECK_INT(l->max_files, 3);
    CHECK(!l->compress);
    CHECK(l->sample == 0.25);
    CHECK(arc_logging_forced_status(l, 404));
    CHECK(arc_logging_forced_status(l, 599));
    CHECK(!arc_logging_forced_status(l, 500));   /* the list replaces the default */
    CHECK_INT(l->force_on_slow, 2000);
    CHECK_INT(l->n_redact_headers, 2);
    if (l->n_redact_headers == 2) {
        CHECK_STR(l->redact_headers[0], "referer");
        CHECK_STR(l->redact_headers[1], "user-agent");
    }
    CHECK_INT(l->n_redact_query, 1);
    if (l->n_redact_query == 1)
        CHECK_STR(l->redact_query[0], "token");
    CHECK_INT(l->ring_capacity, 16);
    CHECK_INT(l->batch_bytes, 8192);
    CHECK_INT(l->flush_interval, 5);
    CHECK_INT(l->drop_behind, 2 << 20);
    CHECK(c->tracing_sample == 1.0);
    CHECK(c->tracing.export);
    CHECK_STR(c->tracing.addr.text, "127.0.0.1:4318");
    CHECK_STR(c->tracing.path, "/v1/traces");
    CHECK_INT(c->tracing.queue_capacity, 64);
    CHECK_INT(c->tracing.flush_interval, 200);
    CHECK_INT(c->tracing.timeout, 1000);
    arc_config_free(c);
    c = must_load("yaml", MINI_YAML "observability: {tracing: {endpoint: \"http://[::1]:4318/otlp/v1/traces\"}}\n");
    if (c) {
        CHECK_STR(c->tracing.path, "/otlp/v1/traces");
        CHECK_STR(c->tracing.addr.text, "[::1]:4318");
        CHECK_INT(c->tracing.queue_capacity, 4096);
        arc_config_free(c);
    }
}

static void test_tracing_errors(void)
{
    CHECK_FAILS("yaml", MINI_YAML "observability: {tracing: {endpoint: \"https://127.0.0.1:4318\"}}\n",
                1, 11, 37, "observability.tracing.endpoint: expected http://IP:PORT[/path]");
    CHECK_FAILS("yaml", MINI_YAML "observability: {tracing: {endpoint: \"http://collector:4318\"}}\n",
                1, 11, 37, "got 'http://collector:4318'");
    CHECK_FAILS("yaml", MINI_YAML "observability: {tracing: {queue_capacity: 100}}\n",
                1, 11, 43, "observability.tracing.queue_capacity: must be a power of two");
}

static struct arc_config *with_logging(const char *logging);

static void test_errors(void)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", MINI_YAML
        "logging:\n"                                                  /* 11 */
        "  output: {file: \"\", rotation: {max_size: 100, max_filez: 1}}\n" /* 12 */
        "  access: {sample: 1.5, force_on_status: [200, 700], force_on_slow: 5}\n" /* 13 */
        "  redact: {headers: [\"bad name\"], query_params: [1]}\n"     /* 14 */
        "  writer: {ring_capacity: 1000, batch_bytes: 1, flush_interval: 0ms}\n" /* 15 */
        "  extra: 1\n"                                                /* 16 */
        "observability: {tracing: {sample: -0.1}}\n",                 /* 17 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 12, 18, "logging.output.file: must not be empty");
    CHECK_ERR(&e, 12, 43, "logging.output.rotation.max_size: expected 0 (no size rotation) or at least 4kb");
    CHECK_ERR(&e, 12, 48, "unknown key 'max_filez'");
    CHECK_ERR(&e, 13, 20, "logging.access.sample: expected a number from 0 to 1, got 1.5");
    CHECK_ERR(&e, 13, 48, "logging.access.force_on_status[1]");
    CHECK_ERR(&e, 13, 69, "logging.access.force_on_slow");
    CHECK_ERR(&e, 14, 22, "logging.redact.headers[0]: 'bad name' is not a header field name");
    CHECK_ERR(&e, 14, 50, "logging.redact.query_params[0]");
    CHECK_ERR(&e, 15, 27, "logging.writer.ring_capacity: must be a power of two, got 1000");
    CHECK_ERR(&e, 15, 46, "logging.writer.batch_bytes");
    CHECK_ERR(&e, 15, 65, "logging.writer.flush_interval");
    CHECK_ERR(&e, 16, 3, "unknown key 'extra'");
    CHECK_ERR(&e, 17, 35, "observability.tracing.sample: expected a number from 0 to 1");
    arc_config_errors_dispose(&e);
    c = load_str("yaml", MINI_YAML
        "logging:\n"                                                  /* 11 */
        "  writer: {drop_behind: 4kb}\n",                             /* 12 */
        &e);
    CHECK(c == NULL);
    CHECK_ERR(&e, 12, 25, "logging.writer.drop_behind: must be 0 (keep the pages) or at least 1mb");
    arc_config_errors_dispose(&e);
    c = with_logging("logging: {writer: {drop_behind: 0}}\n");
    if (c)
        CHECK_INT(c->logging.drop_behind, 0);
    arc_config_free(c);
}

static struct arc_config *with_logging(const char *logging)
{
    char doc[2048];
    snprintf(doc, sizeof(doc), "%s%s", MINI_YAML, logging);
    return must_load("yaml", doc);
}

static void test_restart_only(void)
{
    struct arc_config *off = with_logging("");
    struct arc_config *on = with_logging("logging: {output: {file: /tmp/a.log}}\n");
    struct arc_config *other = with_logging("logging: {output: {file: /tmp/b.log}, "
                                            "writer: {ring_capacity: 64, drop_behind: 0}}\n");
    struct arc_config *sampled = with_logging("logging: {output: {file: /tmp/a.log}, "
                                              "access: {sample: 0.5}, redact: {headers: [referer]}}\n"
                                              "observability: {tracing: {sample: 0.5}}\n");
    struct arc_config *otlp = with_logging("logging: {output: {file: /tmp/a.log}}\n"
                                           "observability: {tracing: {endpoint: \"http://127.0.0.1:1\"}}\n");
    if (!off || !on || !other || !sampled || !otlp)
        goto out;
    CHECK_INT(arc_config_restart_diff(on, otlp, NULL, 0), 1);
    char buf[512];
    CHECK_INT(arc_config_restart_diff(off, on, buf, sizeof(buf)), 1);
    CHECK(strstr(buf, "logging.output (logging turned on)") != NULL);
    CHECK_INT(arc_config_restart_diff(on, off, buf, sizeof(buf)), 1);
    CHECK_INT(arc_config_restart_diff(on, other, buf, sizeof(buf)), 3);
    CHECK(strstr(buf, "logging.output.file") != NULL);
    CHECK(strstr(buf, "logging.writer.ring_capacity") != NULL);
    CHECK(strstr(buf, "logging.writer.drop_behind") != NULL);
    /* sampling and redaction are reloadable */
    CHECK_INT(arc_config_restart_diff(on, sampled, buf, sizeof(buf)), 0);
out:
    arc_config_free(off);
    arc_config_free(on);
    arc_config_free(other);
    arc_config_free(sampled);
    arc_config_free(otlp);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_values);
    RUN(test_errors);
    RUN(test_tracing_errors);
    RUN(test_restart_only);
    return TEST_REPORT();
}
