/*
 * Hierarchical timer wheel (Varghese & Lauck; the classic Linux layout).
 *
 * Time is counted in ticks of tick_ms; a timer's expiry tick is
 * e = deadline / tick_ms. Relative to the current tick c, a timer lives in
 *
 *   level 0 slot  e        & 255   if e - c < 2^8
 *   level 1 slot (e >>  8) & 255   if e - c < 2^16
 *   level 2 slot (e >> 16) & 255   if e - c < 2^24
 *   level 3 slot (e >> 24) & 255   otherwise (e clamped to c + 2^32 - 1, so
 *                                  farther deadlines just cascade again)
 *
 * A level-L slot is emptied ("cascaded") into lower levels when c reaches
 * the start of its 2^(8L)-tick block; by construction every timer in it then
 * has e within 2^(8L) ticks of c and lands lower down. Level 0 slot c holds
 * exactly the timers of tick c.
 *
 * Exactness: ticks only decide which slot to look at. A timer fires on the
 * first advance whose now >= deadline (the slot of the current, partially
 * elapsed tick is rechecked per timer), so it is never early and only late
 * by the caller's advance latency.
 *
 * Skipping: a per-level bitmap of possibly non-empty slots (set on insert,
 * cleared lazily when found empty) lets advance jump straight to the next
 * tick where a slot must be fired or cascaded instead of stepping through
 * every tick, so a long sleep or a far-future timer costs O(events).
 *
 * Re-entrancy: a slot is detached onto a list on the stack before any
 * callback runs. Each timer is unlinked (made idle) before its callback, so
 * the callback may re-arm or cancel it or any other timer, including ones
 * still waiting on the detached list: unlinking works on whatever list a
 * timer is on. Timers armed during advance with a deadline <= now go to the
 * due list and fire on the *next* advance, so a callback re-arming itself
 * "immediately" cannot loop forever.
 */
#include "loop/timer.h"

#include "core/common.h"

#define LVL_BITS 8
#define LVL_MASK (ARC_TW_SLOTS - 1)

_Static_assert(ARC_TW_SLOTS == 1 << LVL_BITS, "slot count must match LVL_BITS");
_Static_assert(ARC_TW_LEVELS == 4, "placement below assumes 4 levels");

static inline void list_init(struct arc_timer *h)
{
    h->_next = h->_prev = h;
}

static inline bool list_empty(const struct arc_timer *h)
{
    return h->_next == h;
}

static inline void list_add_tail(struct arc_timer *h, struct arc_timer *t)
{
    t->_prev = h->_prev;
    t->_next = h;
    h->_prev->_next = t;
    h->_prev = t;
}

static inline void list_del(struct arc_timer *t)
{
    t->_prev->_next = t->_next;
    t->_next->_prev = t->_prev;
    t->_next = t->_prev = NULL;
}

/* Moves all of `from` onto the empty head `to`. */
static void list_move_all(struct arc_timer *from, struct arc_timer *to)
{
    list_init(to);
    if (list_empty(from))
        return;
    to->_next = from->_next;
    to->_prev = from->_prev;
    to->_next->_prev = to;
    to->_prev->_next = to;
    list_init(from);
}

void arc_timer_init(struct arc_timer *t, arc_timer_cb cb)
{
    t->_next = t->_prev = NULL;
    t->deadline_ms = 0;
    t->cb = cb;
}

void arc_tw_init(struct arc_tw *tw, uint64_t now_ms, uint32_t tick_ms)
{
    tw->tick_ms = tick_ms ? tick_ms : 1;
    tw->now_tick = now_ms / tw->tick_ms;
    tw->_now_ms = now_ms;
    tw->count = 0;
    for (int l = 0; l < ARC_TW_LEVELS; l++)
        for (int s = 0; s < ARC_TW_SLOTS; s++)
            list_init(&tw->slots[l][s]);
    list_init(&tw->_due);
    memset(tw->_occupied, 0, sizeof(tw->_occupied));
}

static void place(struct arc_tw *tw, struct arc_timer *t)
{
    uint64_t c = tw->now_tick;
    uint64_t e = t->deadline_ms / tw->tick_ms;
    if (e < c)
        e = c;      /* cannot happen for timers placed via schedule; be safe */
    uint64_t delta = e - c;
    unsigned lvl;
    if (delta < (1ull << 8))
        lvl = 0;
    else if (delta < (1ull << 16))
        lvl = 1;
    else if (delta < (1ull << 24))
        lvl = 2;
    else {
        lvl = 3;
        if (delta >= (1ull << 32))
            e = c + (1ull << 32) - 1;
    }
    unsigned slot = (unsigned)(e >> (lvl * LVL_BITS)) & LVL_MASK;
    list_add_tail(&tw->slots[lvl][slot], t);
    tw->_occupied[lvl][slot >> 6] |= 1ull << (slot & 63);
}

void arc_tw_schedule(struct arc_tw *tw, struct arc_timer *t, uint64_t deadline_ms)
{
    if (arc_timer_pending(t))
        list_del(t);
    else
        tw->count++;
    t->deadline_ms = deadline_ms;
    if (deadline_ms <= tw->_now_ms)
        list_add_tail(&tw->_due, t);
    else
        place(tw, t);
}

void arc_tw_cancel(struct arc_tw *tw, struct arc_timer *t)
{
    if (!arc_timer_pending(t))
        return;
    list_del(t);
    ARC_ASSERT(tw->count > 0);
    tw->count--;
}

/* First possibly-occupied slot index >= from at level lvl, or -1. */
static int next_set(const uint64_t *w, unsigned from)
{
    for (unsigned i = from; i < ARC_TW_SLOTS;) {
        uint64_t x = w[i >> 6] >> (i & 63);
        if (x)
            return (int)(i + (unsigned)__builtin_ctzll(x));
        i = (i | 63) + 1;
    }
    return -1;
}

/* The next tick after c at which a slot of level lvl must be fired (level
 * 0) or cascaded, or UINT64_MAX if the level is empty. */
static uint64_t level_next(struct arc_tw *tw, unsigned lvl, uint64_t c)
{
    unsigned shift = lvl * LVL_BITS;
    uint64_t base = c >> shift;
    unsigned cur = (unsigned)base & LVL_MASK;
    uint64_t *bits = tw->_occupied[lvl];
    for (;;) {
        int j = cur < LVL_MASK ? next_set(bits, cur + 1) : -1;
        if (j < 0)
            j = next_set(bits, 0);
        if (j < 0)
            return UINT64_MAX;
        if (list_empty(&tw->slots[lvl][j])) {
            bits[j >> 6] &= ~(1ull << (j & 63));
            continue;
        }
        /* slot j is next visited (j - cur - 1) mod 256 + 1 blocks from now;
         * j == cur therefore means a full revolution ahead */
        uint64_t d = (uint64_t)(((unsigned)j - cur - 1) & LVL_MASK) + 1;
        return (base + d) << shift;
    }
}

static void detach_slot(struct arc_tw *tw, unsigned lvl, unsigned slot, struct arc_timer *out)
{
    list_move_all(&tw->slots[lvl][slot], out);
    tw->_occupied[lvl][slot >> 6] &= ~(1ull << (slot & 63));
}

static void cascade(struct arc_tw *tw, unsigned lvl, uint64_t c)
{
    struct arc_timer l;
    detach_slot(tw, lvl, (unsigned)(c >> (lvl * LVL_BITS)) & LVL_MASK, &l);
    while (!list_empty(&l)) {
        struct arc_timer *t = l._next;
        list_del(t);
        place(tw, t);
    }
}

/* Fires the due timers of a detached list; re-places the others (only in
 * the current, partially elapsed tick can a timer not be due yet). */
static size_t run_list(struct arc_tw *tw, struct arc_timer *l, uint64_t now)
{
    size_t n = 0;
    while (!list_empty(l)) {
        struct arc_timer *t = l->_next;
        list_del(t);
        if (t->deadline_ms <= now) {
            tw->count--;
            n++;
            t->cb(t, now);
        } else {
            place(tw, t);
        }
    }
    return n;
}

size_t arc_tw_advance(struct arc_tw *tw, uint64_t now_ms)
{
    /* A clock that steps back must not make due timers look early. */
    if (now_ms < tw->_now_ms)
        now_ms = tw->_now_ms;

    struct arc_timer l;
    list_move_all(&tw->_due, &l);
    tw->_now_ms = now_ms;
    size_t fired = run_list(tw, &l, now_ms);

    uint64_t target = now_ms / tw->tick_ms;
    uint64_t c = tw->now_tick;
    for (;;) {
        unsigned slot = (unsigned)c & LVL_MASK;
        if (!list_empty(&tw->slots[0][slot])) {
            detach_slot(tw, 0, slot, &l);
            fired += run_list(tw, &l, now_ms);
        }
        if (c >= target)
            break;
        uint64_t next = target;
        for (unsigned lvl = 0; lvl < ARC_TW_LEVELS; lvl++) {
            uint64_t n = level_next(tw, lvl, c);
            if (n < next)
                next = n;
        }
        c = next;
        tw->now_tick = c;
        /* Higher levels first is not required (a cascade never refills the
         * slot another level is cascading now), any order is correct. */
        for (unsigned lvl = 1; lvl < ARC_TW_LEVELS; lvl++)
            if ((c & ((1ull << (lvl * LVL_BITS)) - 1)) == 0)
                cascade(tw, lvl, c);
    }
    return fired;
}
