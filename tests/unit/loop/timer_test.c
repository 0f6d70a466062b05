/* Proves the timer wheel fires every timer on the first advance whose now
 * reaches its deadline (never early, never more than a tick late), across
 * all levels and beyond them, that cancel and re-arm work from anywhere
 * including callbacks, and that 100k random timers agree with a brute-force
 * model under random advances, cancels and moves. */
#include "test.h"
#include "core/common.h"
#include "loop/timer.h"

struct tt {
    struct arc_timer t;
    int id;
    int fired;
    uint64_t fired_at;
};

static struct arc_tw g_tw;      /* large: keep it off the stack */

static void on_fire(struct arc_timer *t, uint64_t now)
{
    struct tt *x = arc_container_of(t, struct tt, t);
    x->fired++;
    x->fired_at = now;
}

static void test_exact_and_never_early(void)
{
    enum { N = 500 };
    static struct tt ts[N];
    arc_tw_init(&g_tw, 1000, 10);
    for (int i = 0; i < N; i++) {
        ts[i] = (struct tt){ .id = i };
        arc_timer_init(&ts[i].t, on_fire);
        arc_tw_schedule(&g_tw, &ts[i].t, 1000 + 1 + (uint64_t)(i * 37 % 4000));
    }
    CHECK_INT(g_tw.count, N);
    /* 1 ms steps: each fires exactly when now reaches its deadline */
    int bad = 0;
    for (uint64_t now = 1000; now <= 5100; now++) {
        arc_tw_advance(&g_tw, now);
        for (int i = 0; i < N; i++)
            if (ts[i].fired != (now >= ts[i].t.deadline_ms) || ts[i].fired > 1)
                bad++;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(g_tw.count, 0);
    for (int i = 0; i < N; i++)
        CHECK_INT(ts[i].fired_at, ts[i].t.deadline_ms);

    /* tick-sized steps (how the worker drives it): at most one tick late */
    arc_tw_init(&g_tw, 0, 10);
    for (int i = 0; i < N; i++) {
        ts[i].fired = 0;
        arc_tw_schedule(&g_tw, &ts[i].t, (uint64_t)(i * 53 % 3000) + 1);
    }
    for (uint64_t now = 3; now <= 3100; now += 10) {
        size_t before = g_tw.count;
        size_t n = arc_tw_advance(&g_tw, now);
        CHECK_INT(before - g_tw.count, n);
    }
    for (int i = 0; i < N; i++) {
        CHECK_INT(ts[i].fired, 1);
        CHECK(ts[i].fired_at >= ts[i].t.deadline_ms);
        CHECK(ts[i].fired_at - ts[i].t.deadline_ms < 10);
    }
}

static void test_past_deadline_fires_next_advance(void)
{
    struct tt a = { .id = 1 }, b = { .id = 2 };
    arc_tw_init(&g_tw, 500, 4);
    arc_timer_init(&a.t, on_fire);
    arc_timer_init(&b.t, on_fire);
    arc_tw_schedule(&g_tw, &a.t, 100);      /* long past */
    arc_tw_schedule(&g_tw, &b.t, 500);      /* exactly now */
    CHECK(arc_timer_pending(&a.t) && arc_timer_pending(&b.t));
    CHECK_INT(arc_tw_advance(&g_tw, 500), 2);
    CHECK_INT(a.fired + b.fired, 2);
    CHECK(!arc_timer_pending(&a.t));
    /* a clock stepping back fires nothing new and breaks nothing */
    arc_tw_schedule(&g_tw, &a.t, 503);
    CHECK_INT(arc_tw_advance(&g_tw, 400), 0);
    CHECK_INT(arc_tw_advance(&g_tw, 503), 1);
}

static void test_far_deadlines(void)
{
    const uint64_t start = 123456789;
    const uint64_t offs[] = {
        1, 255, 256, 257, 65535, 65536, 65537, 300000, 16777215, 16777216, 16777217,
        123456789, 4294967295ull, 4294967296ull, 4294967297ull, 10000000000ull,
        1ull << 40, (1ull << 40) + 12345, 1ull << 45,
    };
    enum { N = ARC_ARRAY_LEN(offs) };
    static struct tt ts[N];
    for (int mode = 0; mode < 2; mode++) {
        arc_tw_init(&g_tw, start, 1);
        for (int i = 0; i < N; i++) {
            ts[i] = (struct tt){ .id = i };
            arc_timer_init(&ts[i].t, on_fire);
            arc_tw_schedule(&g_tw, &ts[i].t, start + offs[i]);
        }
        if (mode == 0) {
            /* hop to one before each deadline, then onto it */
            for (int i = 0; i < N; i++) {
                uint64_t d = start + offs[i];
                arc_tw_advance(&g_tw, d - 1);
                CHECK_INT(ts[i].fired, 0);
                arc_tw_advance(&g_tw, d);
                CHECK_INT(ts[i].fired, 1);
                CHECK_INT(ts[i].fired_at, d);
                CHECK_INT(g_tw.count, N - 1 - i);
            }
        } else {
            /* one giant leap past everything but the last */
            CHECK_INT(arc_tw_advance(&g_tw, start + (1ull << 45) - 1), N - 1);
            CHECK_INT(ts[N - 1].fired, 0);
            CHECK_INT(arc_tw_advance(&g_tw, start + (1ull << 45)), 1);
        }
    }
    /* "never" */
    struct tt x = { 0 };
    arc_tw_init(&g_tw, 0, 1);
    arc_timer_init(&x.t, on_fire);
    arc_tw_schedule(&g_tw, &x.t, UINT64_MAX);
    CHECK_INT(arc_tw_advance(&g_tw, 1ull << 50), 0);
    CHECK(arc_timer_pending(&x.t));
    arc_tw_cancel(&g_tw, &x.t);
    CHECK_INT(g_tw.count, 0);
}

static void test_cancel_and_move(void)
{
    struct tt a = { 0 }, b = { 0 }, c = { 0 };
    arc_tw_init(&g_tw, 0, 1);
    arc_timer_init(&a.t, on_fire);
    arc_timer_init(&b.t, on_fire);
    arc_timer_init(&c.t, on_fire);
    CHECK(!arc_timer_pending(&a.t));
    arc_tw_cancel(&g_tw, &a.t);                 /* not pending: no-op */
    CHECK_INT(g_tw.count, 0);
    arc_tw_schedule(&g_tw, &a.t, 100);
    arc_tw_schedule(&g_tw, &b.t, 100);
    arc_tw_schedule(&g_tw, &c.t, 70000);        /* level 1 */
    arc_tw_cancel(&g_tw, &a.t);
    arc_tw_cancel(&g_tw, &a.t);
    CHECK_INT(g_tw.count, 2);
    arc_tw_schedule(&g_tw, &b.t, 50);           /* move earlier */
    arc_tw_schedule(&g_tw, &c.t, 60);           /* move down a level */
    CHECK_INT(g_tw.count, 2);
    CHECK_INT(arc_tw_advance(&g_tw, 55), 1);
    CHECK_INT(b.fired, 1);
    CHECK_INT(arc_tw_advance(&g_tw, 200000), 1);
    CHECK_INT(c.fired_at, 200000);
    CHECK_INT(a.fired, 0);
    arc_tw_schedule(&g_tw, &a.t, 300000);
    arc_tw_schedule(&g_tw, &a.t, 250000);       /* move later, then earlier */
    CHECK_INT(arc_tw_advance(&g_tw, 249999), 0);
    CHECK_INT(arc_tw_advance(&g_tw, 250000), 1);
}

/* ---------------------------------------------------------- from callbacks */

static struct tt g_cb[6];
static int g_order[64], g_norder;

static void periodic(struct arc_timer *t, uint64_t now)
{
    struct tt *x = arc_container_of(t, struct tt, t);
    x->fired++;
    if (x->fired < 10)
        arc_tw_schedule(&g_tw, t, now + 10);
}

static void killer(struct arc_timer *t, uint64_t now)
{
    struct tt *x = arc_container_of(t, struct tt, t);
    g_order[g_norder++] = x->id;
    x->fired++;
    arc_tw_cancel(&g_tw, &g_cb[1].t);           /* same slot, still waiting */
    arc_tw_schedule(&g_tw, &g_cb[2].t, now + 5);  /* same slot, moved later */
    arc_tw_cancel(&g_tw, t);                    /* itself: not pending, no-op */
}

static void recorder(struct arc_timer *t, uint64_t now)
{
    struct tt *x = arc_container_of(t, struct tt, t);
    g_order[g_norder++] = x->id;
    x->fired++;
    x->fired_at = now;
}

static void immediate(struct arc_timer *t, uint64_t now)
{
    struct tt *x = arc_container_of(t, struct tt, t);
    x->fired++;
    /* "now" again: must wait for the next advance, not spin */
    arc_tw_schedule(&g_tw, t, now);
}

static void self_then_cancel(struct arc_timer *t, uint64_t now)
{
    struct tt *x = arc_container_of(t, struct tt, t);
    x->fired++;
    arc_tw_schedule(&g_tw, t, now + 1);
    arc_tw_cancel(&g_tw, t);
}

static void test_callbacks_mutate(void)
{
    arc_tw_init(&g_tw, 0, 1);
    for (int i = 0; i < 6; i++)
        g_cb[i] = (struct tt){ .id = i };
    arc_timer_init(&g_cb[0].t, killer);
    arc_timer_init(&g_cb[1].t, recorder);
    arc_timer_init(&g_cb[2].t, recorder);
    arc_timer_init(&g_cb[3].t, periodic);
    arc_timer_init(&g_cb[4].t, immediate);
    arc_timer_init(&g_cb[5].t, self_then_cancel);
    g_norder = 0;
    /* 0, 1 and 2 share a slot; 0 was armed first so it runs first */
    arc_tw_schedule(&g_tw, &g_cb[0].t, 20);
    arc_tw_schedule(&g_tw, &g_cb[1].t, 20);
    arc_tw_schedule(&g_tw, &g_cb[2].t, 20);
    arc_tw_schedule(&g_tw, &g_cb[3].t, 10);
    arc_tw_schedule(&g_tw, &g_cb[4].t, 5);
    arc_tw_schedule(&g_tw, &g_cb[5].t, 7);

    CHECK_INT(arc_tw_advance(&g_tw, 20), 4);    /* 4, 5, 3, 0 */
    CHECK_INT(g_cb[0].fired, 1);
    CHECK_INT(g_cb[1].fired, 0);
    CHECK(!arc_timer_pending(&g_cb[1].t));
    CHECK_INT(g_cb[2].fired, 0);
    CHECK_INT(g_cb[2].t.deadline_ms, 25);
    CHECK_INT(g_cb[4].fired, 1);                /* re-armed for "now": next advance */
    CHECK(arc_timer_pending(&g_cb[4].t));
    CHECK_INT(g_cb[5].fired, 1);
    CHECK(!arc_timer_pending(&g_cb[5].t));
    CHECK_INT(g_cb[3].fired, 1);

    CHECK_INT(arc_tw_advance(&g_tw, 20), 1);    /* only the immediate one */
    CHECK_INT(g_cb[4].fired, 2);
    arc_tw_cancel(&g_tw, &g_cb[4].t);
    arc_tw_advance(&g_tw, 25);
    CHECK_INT(g_cb[2].fired, 1);
    CHECK_INT(g_cb[2].fired_at, 25);
    /* the periodic timer keeps re-arming itself 10 ms ahead, ten times */
    for (uint64_t now = 26; now <= 200; now++)
        arc_tw_advance(&g_tw, now);
    CHECK_INT(g_cb[3].fired, 10);
    CHECK_INT(g_tw.count, 0);
    CHECK_INT(g_norder, 2);
    CHECK_INT(g_order[0], 0);
    CHECK_INT(g_order[1], 2);
}

/* ---------------------------------------------------------- brute force */

enum { BN = 100000 };
static struct tt g_bt[BN];
static uint64_t g_model_deadline[BN];
static bool g_model_pending[BN], g_model_due[BN];
static int g_fired_ids[BN], g_nfired;

static void bf_fire(struct arc_timer *t, uint64_t now)
{
    struct tt *x = arc_container_of(t, struct tt, t);
    x->fired++;
    x->fired_at = now;
    g_fired_ids[g_nfired++] = x->id;
}

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd64(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* Spread of deadlines: mostly near (level 0/1, like request timeouts),
 * some far (levels 2/3), a few beyond the wheel and a few in the past. */
static uint64_t random_deadline(uint64_t now)
{
    uint64_t r = rnd64() % 100;
    if (r < 2)
        return now - rnd64() % (now + 1);
    if (r < 60)
        return now + rnd64() % 300;
    if (r < 85)
        return now + rnd64() % 70000;
    if (r < 97)
        return now + rnd64() % 20000000;
    return now + rnd64() % 10000000000ull;
}

static void run_model(uint32_t tick_ms)
{
    uint64_t now = 1000000;
    arc_tw_init(&g_tw, now, tick_ms);
    for (int i = 0; i < BN; i++) {
        g_bt[i] = (struct tt){ .id = i };
        arc_timer_init(&g_bt[i].t, bf_fire);
        g_model_deadline[i] = random_deadline(now);
        g_model_pending[i] = true;
        g_model_due[i] = g_model_deadline[i] <= now;
        arc_tw_schedule(&g_tw, &g_bt[i].t, g_model_deadline[i]);
    }
    size_t pending = BN;
    int errors = 0, steps = 0;
    while (pending && steps < 5000) {
        steps++;
        /* advance: mostly small steps, sometimes a big jump */
        uint64_t r = rnd64() % 100;
        now += r < 70 ? rnd64() % (3 * tick_ms) : r < 95 ? rnd64() % 5000 : rnd64() % 50000000;
        g_nfired = 0;
        size_t n = arc_tw_advance(&g_tw, now);
        if (n != (size_t)g_nfired)
            errors++;
        uint64_t last_tick = 0;
        for (int k = 0; k < g_nfired; k++) {
            int id = g_fired_ids[k];
            if (!g_model_pending[id] || g_model_deadline[id] > now || g_bt[id].fired != 1) {
                if (errors++ < 5)
                    fprintf(stderr, "timer %d fired wrongly (deadline %" PRIu64 ", now %" PRIu64 ")\n",
                            id, g_model_deadline[id], now);
            }
            /* wheel-placed timers fire in tick order within one advance */
            if (!g_model_due[id]) {
                uint64_t tk = g_model_deadline[id] / tick_ms;
                if (tk < last_tick)
                    errors++;
                last_tick = tk;
            }
            g_bt[id].fired = 0;
            g_model_pending[id] = false;
            pending--;
        }
        /* nothing due may remain */
        if (steps % 64 == 0) {
            for (int i = 0; i < BN; i++)
                if (g_model_pending[i] && g_model_deadline[i] <= now && errors++ < 5)
                    fprintf(stderr, "timer %d overdue (deadline %" PRIu64 ", now %" PRIu64 ")\n",
                            i, g_model_deadline[i], now);
        }
        if (g_tw.count != pending)
            errors++;
        /* random cancels and (re)arms between advances */
        for (int k = 0; k < 50; k++) {
            int i = (int)(rnd64() % BN);
            if (rnd64() % 3 == 0) {
                arc_tw_cancel(&g_tw, &g_bt[i].t);
                if (g_model_pending[i])
                    pending--;
                g_model_pending[i] = false;
            } else if (g_model_pending[i] || rnd64() % 4 == 0) {
                g_model_deadline[i] = random_deadline(now);
                g_model_due[i] = g_model_deadline[i] <= now;
                arc_tw_schedule(&g_tw, &g_bt[i].t, g_model_deadline[i]);
                if (!g_model_pending[i])
                    pending++;
                g_model_pending[i] = true;
            }
        }
    }
    /* drain whatever is left with one leap */
    g_nfired = 0;
    arc_tw_advance(&g_tw, now + (1ull << 40));
    for (int k = 0; k < g_nfired; k++) {
        g_model_pending[g_fired_ids[k]] = false;
        pending--;
    }
    CHECK_INT(pending, 0);
    CHECK_INT(g_tw.count, 0);
    CHECK_INT(errors, 0);
    printf("     model tick=%u: %d advances\n", tick_ms, steps);
}

static void test_against_model(void)
{
    run_model(1);
    run_model(7);
}

int main(void)
{
    RUN(test_exact_and_never_early);
    RUN(test_past_deadline_fires_next_advance);
    RUN(test_far_deadlines);
    RUN(test_cancel_and_move);
    RUN(test_callbacks_mutate);
    RUN(test_against_model);
    return TEST_REPORT();
}
