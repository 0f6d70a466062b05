/* Proves the flood guards' token buckets: a burst of one second's worth is
 * allowed, the next frame is refused, tokens come back in proportion to the
 * (injected) time that passed and never beyond one second's worth, clocks
 * going backwards grant nothing, UNLIMITED disables a kind, and kinds are
 * independent. Also checks limit defaults and the breach names. */
#include "test.h"
#include "http2/http2.h"

static struct arc_h2_limits lim(uint32_t resets, uint32_t pings)
{
    struct arc_h2_limits in = { .resets_per_sec = resets, .pings_per_sec = pings }, out;
    arc_h2_limits_resolve(&in, &out);
    return out;
}

static int charge_until_refused(struct arc_h2_flood *f, enum arc_h2_flood_kind k, uint64_t now,
                                int max)
{
    for (int i = 0; i < max; i++)
        if (!arc_h2_flood_charge(f, k, now))
            return i;
    return max;
}

static void test_burst_then_refuse(void)
{
    struct arc_h2_limits l = lim(10, 0);
    struct arc_h2_flood f;

    arc_h2_flood_init(&f, &l, 5000);
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_RESET, 5000, 100), 10);
    CHECK(!arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 5000));
    CHECK_INT(arc_h2_flood_breach_of(ARC_H2_FLOOD_RESET), ARC_H2_BREACH_RAPID_RESET);
}

static void test_refill_proportional(void)
{
    struct arc_h2_limits l = lim(10, 0);
    struct arc_h2_flood f;

    arc_h2_flood_init(&f, &l, 0);
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_RESET, 0, 100), 10);
    /* 10/s = one token per 100 ms: 99 ms is not enough, 100 ms is. */
    CHECK(!arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 99));
    CHECK(arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 100));
    CHECK(!arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 100));
    /* Partial refills accumulate: 50 + 50 ms make one token. */
    CHECK(!arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 150));
    CHECK(arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 200));
    /* Half a second gives back half the bucket. */
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_RESET, 700, 100), 5);
}

static void test_refill_capped(void)
{
    struct arc_h2_limits l = lim(10, 0);
    struct arc_h2_flood f;

    arc_h2_flood_init(&f, &l, 0);
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_RESET, 0, 100), 10);
    /* An hour of silence still buys only one second's worth. */
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_RESET, 3600u * 1000u, 100), 10);
    /* Huge elapsed times must not overflow into a full bucket forever. */
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_RESET, UINT64_MAX / 2, 100), 10);
}

static void test_clock_backwards(void)
{
    struct arc_h2_limits l = lim(10, 0);
    struct arc_h2_flood f;

    arc_h2_flood_init(&f, &l, 10000);
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_RESET, 10000, 100), 10);
    CHECK(!arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 1000));
    /* Back at the old time: still nothing; 100 ms after it: one token. */
    CHECK(!arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 10000));
    CHECK(arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, 10100));
}

static void test_sustained_rate_at_limit(void)
{
    struct arc_h2_limits l = lim(100, 0);
    struct arc_h2_flood f;
    int refused = 0;

    /* Exactly the allowed rate (one per 10 ms) for a minute never trips. */
    arc_h2_flood_init(&f, &l, 0);
    for (uint64_t t = 0; t < 60000; t += 10)
        refused += !arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, t);
    CHECK_INT(refused, 0);
    /* Twice the rate trips within about a second (the burst runs out). */
    arc_h2_flood_init(&f, &l, 0);
    uint64_t t = 0;
    while (arc_h2_flood_charge(&f, ARC_H2_FLOOD_RESET, t) && t < 60000)
        t += 5;
    CHECK(t >= 900 && t <= 1100);
}

static void test_kinds_independent_and_unlimited(void)
{
    struct arc_h2_limits l = lim(ARC_H2_UNLIMITED, 3);
    struct arc_h2_flood f;

    arc_h2_flood_init(&f, &l, 0);
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_RESET, 0, 100000), 100000);
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_PING, 0, 100), 3);
    /* Pings exhausted; settings untouched (default 20). */
    CHECK_INT(charge_until_refused(&f, ARC_H2_FLOOD_SETTINGS, 0, 100),
              ARC_H2_DEFAULT_SETTINGS_PER_SEC);
    CHECK_INT(arc_h2_flood_breach_of(ARC_H2_FLOOD_PING), ARC_H2_BREACH_PING_FLOOD);
    CHECK_INT(arc_h2_flood_breach_of(ARC_H2_FLOOD_EMPTY_DATA), ARC_H2_BREACH_EMPTY_DATA_FLOOD);
}

static void test_limits_defaults(void)
{
    struct arc_h2_limits in = { .stream_window = 0xffffffffu - 1, .max_continuations = 2 }, out;

    arc_h2_limits_resolve(NULL, &out);
    CHECK_INT(out.max_concurrent_streams, ARC_H2_DEFAULT_MAX_CONCURRENT_STREAMS);
    CHECK_INT(out.max_header_list_size, ARC_H2_DEFAULT_MAX_HEADER_LIST_SIZE);
    CHECK_INT(out.resets_per_sec, ARC_H2_DEFAULT_RESETS_PER_SEC);
    CHECK_INT(out.conn_window, ARC_H2_DEFAULT_CONN_WINDOW);
    arc_h2_limits_resolve(&in, &out);
    CHECK_INT(out.stream_window, 0x7fffffff);
    CHECK_INT(out.max_continuations, 2);
    CHECK_INT(out.pings_per_sec, ARC_H2_DEFAULT_PINGS_PER_SEC);
    CHECK_STR(arc_h2_breach_name(ARC_H2_BREACH_CONTINUATION_FLOOD), "continuation_flood");
    CHECK_STR(arc_h2_breach_name(ARC_H2_BREACH__COUNT), "unknown");
}

int main(void)
{
    RUN(test_burst_then_refuse);
    RUN(test_refill_proportional);
    RUN(test_refill_capped);
    RUN(test_clock_backwards);
    RUN(test_sustained_rate_at_limit);
    RUN(test_kinds_independent_and_unlimited);
    RUN(test_limits_defaults);
    return TEST_REPORT();
}
