/* Proves the passive-health rules of health.h: consecutive failures and the
 * error rate over a sliding window eject (the rate only after min_requests),
 * a success resets the run, ejection time grows with ejections in a row and
 * starts over after a healthy stretch, readmission happens when time is up,
 * and max_ejection_percent / panic count the way the docs say. */
#include "test.h"
#include "upstream/health.h"

static struct arc_passive_conf conf(void)
{
    return (struct arc_passive_conf){
        .enabled = true, .consecutive_failures = 5, .error_rate_threshold = 0.5,
        .window = 10000, .min_requests = 10, .ejection_time = 1000,
        .max_ejection_time = 3500, .max_ejection_percent = 50,
    };
}

static void test_consecutive(void)
{
    struct arc_passive_conf pc = conf();
    pc.error_rate_threshold = 0;        /* only the consecutive rule */
    struct arc_hep h = { 0 };
    for (int i = 0; i < 4; i++)
        CHECK_INT(arc_health_record(&pc, &h, false, 100), ARC_HR_NONE);
    CHECK_INT(arc_health_record(&pc, &h, true, 100), ARC_HR_NONE);     /* run broken */
    for (int i = 0; i < 4; i++)
        CHECK_INT(arc_health_record(&pc, &h, false, 100), ARC_HR_NONE);
    CHECK_INT(arc_health_record(&pc, &h, false, 100), ARC_HR_CONSECUTIVE);
    CHECK_INT(arc_health_eject(&pc, &h, ARC_HR_CONSECUTIVE, 100), 1100);
    CHECK_INT(h.state, ARC_HS_EJECTED);
    CHECK_INT(h.ejections[ARC_HR_CONSECUTIVE], 1);
    /* while ejected, outcomes are ignored; readmitted when time is up */
    CHECK_INT(arc_health_record(&pc, &h, false, 200), ARC_HR_NONE);
    CHECK(!arc_health_readmit(&h, 1099));
    CHECK(arc_health_readmit(&h, 1100));
    CHECK_INT(h.state, ARC_HS_HEALTHY);
    CHECK_INT(h.reason, ARC_HR_CONSECUTIVE);   /* why it was last out */
}

static void test_error_rate(void)
{
    struct arc_passive_conf pc = conf();
    pc.consecutive_failures = 0;        /* only the rate rule */
    struct arc_hep h = { 0 };
    /* 9 attempts, 5 failed: over 50% but below min_requests */
    for (int i = 0; i < 4; i++)
        CHECK_INT(arc_health_record(&pc, &h, true, 1000), ARC_HR_NONE);
    for (int i = 0; i < 5; i++)
        CHECK_INT(arc_health_record(&pc, &h, false, 1000), ARC_HR_NONE);
    /* the 10th (a failure) reaches min_requests at 6/10 */
    CHECK_INT(arc_health_record(&pc, &h, false, 1000), ARC_HR_ERROR_RATE);

    /* the previous window counts by its overlap with the sliding window:
     * 9 failures in [0, 10s) (below min_requests); at 15s half of them
     * (4.5) still count: with 6 successes then, 4.5/10.5 and 5.5/11.5 stay
     * under 0.5, and the next failure makes 6.5/12.5 */
    struct arc_hep k = { 0 };
    for (int i = 0; i < 9; i++)
        CHECK_INT(arc_health_record(&pc, &k, false, 0), ARC_HR_NONE);
    for (int i = 0; i < 6; i++)
        CHECK_INT(arc_health_record(&pc, &k, true, 15000), ARC_HR_NONE);
    CHECK_INT(arc_health_record(&pc, &k, false, 15000), ARC_HR_NONE);
    CHECK_INT(arc_health_record(&pc, &k, false, 15000), ARC_HR_ERROR_RATE);
    /* far later, the old window is gone entirely */
    struct arc_hep m = { 0 };
    for (int i = 0; i < 9; i++)
        arc_health_record(&pc, &m, false, 0);
    for (int i = 0; i < 9; i++)
        CHECK_INT(arc_health_record(&pc, &m, i % 2 == 0, 50000), ARC_HR_NONE);
}

static void test_ejection_time_grows(void)
{
    struct arc_passive_conf pc = conf();
    struct arc_hep h = { 0 };
    CHECK_INT(arc_health_eject(&pc, &h, ARC_HR_CONSECUTIVE, 0), 1000);
    CHECK(arc_health_readmit(&h, 1000));
    /* out again soon after: twice as long, then three times, then capped */
    CHECK_INT(arc_health_eject(&pc, &h, ARC_HR_CONSECUTIVE, 1100), 1100 + 2000);
    CHECK(arc_health_readmit(&h, 3100));
    CHECK_INT(arc_health_eject(&pc, &h, ARC_HR_ERROR_RATE, 3200), 3200 + 3000);
    CHECK(arc_health_readmit(&h, 6200));
    CHECK_INT(arc_health_eject(&pc, &h, ARC_HR_CONSECUTIVE, 6300), 6300 + 3500);
    CHECK(arc_health_readmit(&h, 9800));
    /* healthy for as long as the last ejection lasted: back to 1x */
    CHECK_INT(arc_health_eject(&pc, &h, ARC_HR_CONSECUTIVE, 9800 + 3500), 9800 + 3500 + 1000);
    CHECK_INT(h.ejections[ARC_HR_CONSECUTIVE], 4);
    CHECK_INT(h.ejections[ARC_HR_ERROR_RATE], 1);
}

static void test_limits(void)
{
    struct arc_passive_conf pc = conf();
    CHECK(!arc_health_may_eject(&pc, 0, 1));   /* the only endpoint: never */
    CHECK(arc_health_may_eject(&pc, 0, 2));
    CHECK(!arc_health_may_eject(&pc, 1, 2));
    CHECK(arc_health_may_eject(&pc, 4, 10));
    CHECK(!arc_health_may_eject(&pc, 5, 10));
    pc.max_ejection_percent = 100;
    CHECK(arc_health_may_eject(&pc, 1, 2));
    CHECK(!arc_health_panic(50, 5, 10));
    CHECK(arc_health_panic(50, 4, 10));
    CHECK(!arc_health_panic(0, 0, 10));

    struct arc_htable t = { 0 };
    CHECK_INT(arc_htable_fit(&t, 4), 0);
    arc_health_eject(&pc, arc_htable_row(&t, 3), ARC_HR_ERROR_RATE, 0);
    CHECK_INT(arc_htable_fit(&t, 100), 0);     /* grown: rows kept */
    struct arc_health_view v;
    CHECK(arc_health_get(&t, 3, &v));
    CHECK_INT(v.state, ARC_HS_EJECTED);
    CHECK_INT(v.reason, ARC_HR_ERROR_RATE);
    CHECK_INT(v.ejections[ARC_HR_ERROR_RATE], 1);
    CHECK(arc_health_get(&t, 99, &v) && v.state == ARC_HS_HEALTHY);
    CHECK(!arc_health_get(&t, 100, &v));
    arc_htable_dispose(&t);
}

int main(void)
{
    RUN(test_consecutive);
    RUN(test_error_rate);
    RUN(test_ejection_time_grows);
    RUN(test_limits);
    return TEST_REPORT();
}
