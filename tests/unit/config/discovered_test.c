/* The store of discovered endpoint sets: sorted, de-duplicated, "changed"
 * only when the set differs; a snapshot built from a config with a dns
 * upstream carries the stored set (capped by its balancer), a reload that
 * renames the host starts empty, prune forgets sets no upstream names. */
#include "test.h"
#include "config/config.h"
#include "config/discovered.h"
#include "config/snapshot.h"
#include "config_test.h"

#include <string.h>

static struct arc_addr addr(const char *s)
{
    struct arc_addr a;
    CHECK_INT(arc_config_parse_addr(s, &a), 0);
    return a;
}

static void test_set_sorts_dedupes_and_reports_change(void)
{
    arc_discovered_reset();
    struct arc_addr v[3] = { addr("10.0.0.2:80"), addr("10.0.0.1:80"), addr("10.0.0.2:80") };
    CHECK_INT(arc_discovered_count("u", "h.example", 80), -1);
    CHECK_INT(arc_discovered_set("u", "h.example", 80, v, 3), 1);
    CHECK_INT(arc_discovered_count("u", "h.example", 80), 2);
    /* the same set in another order: no change */
    struct arc_addr w[2] = { addr("10.0.0.1:80"), addr("10.0.0.2:80") };
    CHECK_INT(arc_discovered_set("u", "h.example", 80, w, 2), 0);
    CHECK_INT(arc_discovered_set("u", "h.example", 80, w, 1), 1);
    CHECK_INT(arc_discovered_count("u", "h.example", 80), 1);
    /* another port is another set */
    CHECK_INT(arc_discovered_count("u", "h.example", 81), -1);
    arc_discovered_reset();
}

static const char *cfg_text(const char *host, const char *lb)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
             "upstreams:\n"
             "  - name: d\n"
             "    discovery: {type: dns, hostname: %s, port: 8080}\n"
             "    lb: %s\n"
             "  - name: s\n"
             "    discovery: {type: static, endpoints: [{address: \"10.9.9.9:1\"}]}\n"
             "routes:\n"
             "  - name: r\n"
             "    match: {path: \"/{*rest}\"}\n"
             "    action: {upstream: d}\n", host, lb);
    return buf;
}

static struct arc_snapshot *build(const char *host, const char *lb)
{
    struct arc_config_errors e;
    struct arc_config *c = load_str("yaml", cfg_text(host, lb), &e);
    CHECK(c != NULL);
    arc_config_errors_dispose(&e);
    struct arc_snapshot *s = NULL;
    struct arc_config_errors e2 = { 0 };
    CHECK_INT(arc_snapshot_build(c, &s, &e2), 0);
    arc_config_errors_dispose(&e2);
    return s;
}

static void test_snapshot_carries_the_stored_set(void)
{
    arc_discovered_reset();
    struct arc_snapshot *s = build("a.example", "{algorithm: round_robin}");
    CHECK_INT(s->ups[0].n_eps, 0);              /* nothing known yet */
    CHECK_INT(s->ups[1].n_eps, 1);
    arc_snapshot_unref(s);

    struct arc_addr v[4] = { addr("10.0.0.3:8080"), addr("[::1]:8080"), addr("10.0.0.1:8080"),
                             addr("10.0.0.2:8080") };
    CHECK_INT(arc_discovered_set("d", "a.example", 8080, v, 4), 1);
    s = build("a.example", "{algorithm: round_robin}");
    CHECK_INT(s->ups[0].n_eps, 4);
    CHECK_STR(s->ups[0].eps[0].text, "10.0.0.1:8080");
    CHECK_STR(s->ups[0].eps[3].text, "[::1]:8080");
    CHECK_INT(s->ups[0].eps[0].weight, 1);
    uint32_t id1 = s->ups[0].eps[1].id;
    arc_snapshot_unref(s);

    /* maglev with 3 slots takes at most 2 endpoints; identities stay */
    s = build("a.example", "{algorithm: maglev, table_size: 3}");
    CHECK_INT(s->ups[0].n_eps, 2);
    CHECK_INT(s->ups[0].eps[1].id, id1);
    arc_snapshot_unref(s);

    /* another hostname: not the stored set; prune forgets the old one */
    s = build("b.example", "{algorithm: round_robin}");
    CHECK_INT(s->ups[0].n_eps, 0);
    arc_discovered_prune(s->cfg);
    CHECK_INT(arc_discovered_count("d", "a.example", 8080), -1);
    arc_snapshot_unref(s);
    arc_discovered_reset();
}

int main(void)
{
    RUN(test_set_sorts_dedupes_and_reports_change);
    RUN(test_snapshot_carries_the_stored_set);
    return TEST_REPORT();
}
