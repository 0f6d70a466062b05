/* Proves the snapshot lifetime rules of hot reload with a fake clock:
 * reloads publish a new snapshot at given ticks, exchanges pin the snapshot
 * that was current when they started (per-worker pins, arc_px__snap_pin)
 * and unpin it when they end; a snapshot is freed exactly when it is
 * neither the current one nor pinned by a running exchange — also when
 * more generations are in flight than a worker has pin slots (the shared
 * reference fallback) — and arc_snapshot_live() says so at every tick. A
 * reference model (pins per generation) is checked against the real count
 * after every step of several random schedules. */
#include "test.h"
#include "config/config.h"
#include "config/snapshot.h"
#include "proxy/proxy_int.h"

#include <stdlib.h>
#include <string.h>

static const char CONFIG[] =
    "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
    "observability: {metrics_enabled: false}\n"
    "routes: [{name: r, match: {path: /}, action: {respond: {status: 200}}}]\n";

static struct arc_snapshot *build(void)
{
    struct arc_config *cfg = NULL;
    struct arc_config_errors e = { 0 };
    ARC_ASSERT(arc_config_load_string(CONFIG, strlen(CONFIG), "t.yaml", "yaml", &cfg, &e) == 0);
    struct arc_snapshot *s = NULL;
    ARC_ASSERT(arc_snapshot_build(cfg, &s, &e) == 0);
    arc_config_errors_dispose(&e);
    return s;
}

#define MAX_GEN 64
#define MAX_EX 512

struct fake_ex {
    struct arc_snapshot *snap;
    int gen;
    uint64_t ends_at;
    bool live;
};

/* One schedule: `ticks` steps; at each, maybe a reload, some exchanges
 * starting (lasting 1..max_len ticks), the ended ones unpinned. */
static void run(unsigned seed, int ticks, int reload_every, int max_len, int starts)
{
    static struct arc_worker w;         /* only held[] and snap are used */
    memset(&w, 0, sizeof(w));
    srand(seed);
    uint32_t live0 = arc_snapshot_live();
    struct arc_snapshot *gens[MAX_GEN];
    uint64_t pins[MAX_GEN] = { 0 };
    int n_gen = 0, cur = 0;
    gens[n_gen++] = build();            /* the control thread's reference */
    w.snap = gens[0];
    arc_snapshot_ref(w.snap);           /* the worker's own reference */
    static struct fake_ex ex[MAX_EX];
    memset(ex, 0, sizeof(ex));
    for (uint64_t now = 1; now <= (uint64_t)ticks; now++) {
        /* reload: the control thread publishes, the worker adopts */
        if (reload_every && now % (uint64_t)reload_every == 0 && n_gen < MAX_GEN) {
            gens[n_gen] = build();
            struct arc_snapshot *old = gens[cur];
            cur = n_gen++;
            arc_snapshot_ref(gens[cur]);        /* worker adopts */
            arc_snapshot_unref(w.snap);
            w.snap = gens[cur];
            arc_snapshot_unref(old);            /* control thread lets go */
        }
        /* exchanges that end now */
        for (int i = 0; i < MAX_EX; i++)
            if (ex[i].live && ex[i].ends_at <= now) {
                arc_px__snap_unpin(&w, ex[i].snap);
                pins[ex[i].gen]--;
                ex[i].live = false;
            }
        /* new ones, on the current snapshot */
        for (int k = 0; k < starts; k++)
            for (int i = 0; i < MAX_EX; i++)
                if (!ex[i].live) {
                    ex[i] = (struct fake_ex){ .snap = arc_px__snap_pin(&w, w.snap), .gen = cur,
                                              .ends_at = now + 1 + (uint64_t)(rand() % max_len),
                                              .live = true };
                    CHECK(ex[i].snap == w.snap);
                    pins[cur]++;
                    break;
                }
        /* the model: current, plus every older generation still pinned */
        uint32_t want = 1;
        for (int g = 0; g < n_gen; g++)
            if (g != cur && pins[g])
                want++;
        CHECK_INT(arc_snapshot_live() - live0, want);
    }
    /* everything ends: only the current one stays */
    for (int i = 0; i < MAX_EX; i++)
        if (ex[i].live) {
            arc_px__snap_unpin(&w, ex[i].snap);
            pins[ex[i].gen]--;
        }
    CHECK_INT(arc_snapshot_live() - live0, 1);
    for (int i = 0; i < HELD_SNAPS; i++)
        CHECK(w.held[i].snap == NULL);  /* no pin slot left behind */
    arc_snapshot_unref(w.snap);
    arc_snapshot_unref(gens[cur]);
    CHECK_INT(arc_snapshot_live(), live0);
}

/* Short exchanges, a reload every tick: at most a couple in flight. */
static void test_reload_every_tick(void)
{
    run(1, 200, 1, 2, 3);
}

/* Long exchanges spanning many reloads: more generations in flight than
 * a worker has pin slots (HELD_SNAPS), so pins fall back to shared
 * references, and everything is still freed exactly. */
static void test_more_generations_than_pin_slots(void)
{
    run(2, 60, 1, 40, 2);
}

/* No reloads: one snapshot throughout. */
static void test_no_reload(void)
{
    run(3, 100, 0, 10, 5);
}

/* Random schedules. */
static void test_random_schedules(void)
{
    for (unsigned seed = 10; seed < 30; seed++)
        run(seed, 150, 1 + (int)(seed % 7), 1 + (int)(seed % 25), 1 + (int)(seed % 4));
}

int main(void)
{
    RUN(test_reload_every_tick);
    RUN(test_more_generations_than_pin_slots);
    RUN(test_no_reload);
    RUN(test_random_schedules);
    return TEST_REPORT();
}
