/*
 * The rate-limiting algorithms as pure steps on a 64-bit state (limit.h).
 * Every state fits one word so that a table cell ({tag, state}) is updated
 * with a single 16-byte compare-and-swap; 0 is always "a key never seen".
 *
 *   algorithm        state
 *   gcra, leaky      TAT in ns of the monotonic clock
 *   token_bucket     bit 63 set | milli-tokens (31 bits) << 32 | last refill ms (low 32 bits)
 *   fixed_window     count << 32 | window index (low 32 bits)
 *   sliding_window   window index (24 bits) << 40 | previous count << 20 | current count
 *
 * Clocks: every worker reads the same monotonic clock, but one may act on
 * a reading a moment older than the one another worker just stored. Each
 * step treats a stored time (or window) ahead of `now` as "now" rather
 * than as a wrap, so a stale reading never resets a key.
 */
#include "limit/limit.h"

#include <math.h>

#define MS 1000000ull

void arc_rl_rule_init(struct arc_rl_rule *r, enum arc_rl_algo algo, double qps, uint32_t burst,
                      uint64_t window_ms, uint64_t max_delay_ms)
{
    *r = (struct arc_rl_rule){ .algo = algo };
    double m = llround(qps * 1000.0);
    r->mqps = m < 1 ? 1 : (uint64_t)m;
    r->burst = burst < 1 ? 1 : burst;
    r->window_ms = window_ms ? window_ms : 1000;
    r->max_delay_ns = max_delay_ms * MS;
    r->t_ns = 1000000000000ull / r->mqps;
    if (r->t_ns == 0)
        r->t_ns = 1;
    double lim = floor((double)r->mqps * (double)r->window_ms / 1e6 + 0.5);
    r->limit = lim < 1 ? 1 : lim > ARC_RL_MAX_WINDOW_LIMIT ? ARC_RL_MAX_WINDOW_LIMIT : (uint32_t)lim;
}

/* ------------------------------------------------------------ GCRA / leaky */

static uint64_t gcra(const struct arc_rl_rule *r, uint64_t tat, uint64_t now,
                     struct arc_rl_decision *d, bool shape)
{
    uint64_t T = r->t_ns;
    uint64_t tol = (uint64_t)(r->burst - 1) * T;
    if (tat < now)
        tat = now;
    uint64_t ahead = tat - now;
    if (ahead <= tol) {
        uint64_t nt = tat + T;
        *d = (struct arc_rl_decision){ .verdict = ARC_RL_ALLOW,
                                       .remaining = (tol + T - (nt - now)) / T,
                                       .reset_ns = nt - now };
        return nt;
    }
    uint64_t wait = ahead - tol;
    if (shape && wait <= r->max_delay_ns) {
        uint64_t nt = tat + T;
        *d = (struct arc_rl_decision){ .verdict = ARC_RL_DELAY, .delay_ns = wait,
                                       .reset_ns = nt - now };
        return nt;
    }
    *d = (struct arc_rl_decision){ .verdict = ARC_RL_REJECT,
                                   .retry_ns = shape ? wait - r->max_delay_ns : wait,
                                   .reset_ns = ahead };
    return 0;
}

/* ------------------------------------------------------------ token bucket */

#define TB_VALID (1ull << 63)

static uint64_t token_bucket(const struct arc_rl_rule *r, uint64_t state, uint64_t now,
                             struct arc_rl_decision *d, bool *changed)
{
    uint64_t cap = (uint64_t)r->burst * 1000;
    uint64_t now_ms = now / MS;
    uint32_t now32 = (uint32_t)now_ms, last32;
    uint64_t tokens;
    if (!(state & TB_VALID)) {
        tokens = cap;
        last32 = now32;
    } else {
        tokens = (state >> 32) & 0x7fffffffu;
        last32 = (uint32_t)state;
        int32_t el = (int32_t)(now32 - last32);
        if (el > 0) {
            /* milli-tokens per ms = qps; carry the time a fraction of a
             * milli-token took, so slow rates still refill exactly. */
            uint64_t add = (uint64_t)el * r->mqps / 1000;
            if (add >= cap - tokens) {
                tokens = cap;
                last32 = now32;
            } else {
                tokens += add;
                last32 += (uint32_t)(add * 1000 / r->mqps);
            }
        }
    }
    uint64_t carried = (uint64_t)(uint32_t)(now32 - last32);
    if ((int32_t)(now32 - last32) < 0)
        carried = 0;
    if (tokens >= 1000) {
        tokens -= 1000;
        uint64_t need_ms = (cap - tokens) * 1000 / r->mqps;
        *d = (struct arc_rl_decision){ .verdict = ARC_RL_ALLOW, .remaining = tokens / 1000,
                                       .reset_ns = (need_ms > carried ? need_ms - carried : 0) * MS };
        *changed = true;
        return TB_VALID | (tokens << 32) | last32;
    }
    uint64_t need_ms = ((1000 - tokens) * 1000 + r->mqps - 1) / r->mqps;
    uint64_t full_ms = (cap - tokens) * 1000 / r->mqps;
    *d = (struct arc_rl_decision){ .verdict = ARC_RL_REJECT,
                                   .retry_ns = (need_ms > carried ? need_ms - carried : 0) * MS,
                                   .reset_ns = (full_ms > carried ? full_ms - carried : 0) * MS };
    *changed = false;
    return state;
}

/* ------------------------------------------------------------ windows */

static uint64_t fixed_window(const struct arc_rl_rule *r, uint64_t state, uint64_t now,
                             struct arc_rl_decision *d, bool *changed)
{
    uint64_t W = r->window_ms, now_ms = now / MS;
    uint64_t cur = now_ms / W;
    uint64_t count = 0;
    if (state) {
        int32_t diff = (int32_t)((uint32_t)cur - (uint32_t)state);
        if (diff <= 0) {                /* this window (or a later one a fresher clock saw) */
            count = state >> 32;
            cur -= (uint64_t)(-(int64_t)diff);
        }
    }
    uint64_t end = (cur + 1) * W;
    uint64_t left_ms = end > now_ms ? end - now_ms : 0;
    if (count < r->limit) {
        count++;
        *d = (struct arc_rl_decision){ .verdict = ARC_RL_ALLOW, .remaining = r->limit - count,
                                       .reset_ns = left_ms * MS };
        *changed = true;
        return (count << 32) | (uint32_t)cur;
    }
    *d = (struct arc_rl_decision){ .verdict = ARC_RL_REJECT, .retry_ns = left_ms * MS,
                                   .reset_ns = left_ms * MS };
    *changed = false;
    return state;
}

#define SW_MASK 0xfffffu
#define SW_IDX_MASK 0xffffffu

static uint64_t sliding_window(const struct arc_rl_rule *r, uint64_t state, uint64_t now,
                               struct arc_rl_decision *d, bool *changed)
{
    uint64_t W = r->window_ms, now_ms = now / MS, L = r->limit;
    uint64_t cur = now_ms / W;
    uint64_t e = now_ms - cur * W;      /* ms into the current window */
    uint64_t prev = 0, c = 0;
    if (state) {
        uint32_t diff = ((uint32_t)cur - (uint32_t)(state >> 40)) & SW_IDX_MASK;
        uint64_t sp = (state >> 20) & SW_MASK, sc = state & SW_MASK;
        if (diff == 0) {
            prev = sp;
            c = sc;
        } else if (diff == 1) {
            prev = sc;
        } else if (diff >= 0x800000u) { /* stored window is ahead of our clock */
            prev = sp;
            c = sc;
            cur = state >> 40;          /* (low 24 bits suffice below) */
            e = 0;
        }
    }
    /* Estimate over the sliding interval, scaled by W to stay in integers:
     * prev·(W - e) + c·W, compared with (L - 1)·W before admitting one more. */
    uint64_t est = prev * (W - e) + c * W;
    if (est + W <= L * W) {
        c++;
        est += W;
        *d = (struct arc_rl_decision){ .verdict = ARC_RL_ALLOW,
                                       .remaining = (L * W - est) / W,
                                       .reset_ns = ((W - e) + W) * MS };
        *changed = true;
        return ((cur & SW_IDX_MASK) << 40) | (prev << 20) | c;
    }
    uint64_t wait;
    if (c + 1 <= L) {
        /* prev > 0 here: wait until prev's weight has shrunk enough. */
        uint64_t room = (L - c - 1) * W;
        uint64_t e_need = W - room / prev;
        wait = e_need > e ? e_need - e : 1;
    } else {
        /* The current window alone is full: in the next one it becomes
         * the previous window, weighted down as that one passes. */
        uint64_t e2 = W - (L - 1) * W / c;
        wait = (W - e) + e2;
    }
    *d = (struct arc_rl_decision){ .verdict = ARC_RL_REJECT, .retry_ns = wait * MS,
                                   .reset_ns = ((W - e) + (c ? W : 0)) * MS };
    *changed = false;
    return state;
}

/* ------------------------------------------------------------ dispatch */

uint64_t arc_rl_step(const struct arc_rl_rule *r, uint64_t state, uint64_t now,
                     struct arc_rl_decision *d)
{
    bool changed = true;
    uint64_t ns;
    switch (r->algo) {
    case ARC_RL_GCRA:
    case ARC_RL_LEAKY_BUCKET:
        ns = gcra(r, state, now, d, r->algo == ARC_RL_LEAKY_BUCKET);
        return d->verdict == ARC_RL_REJECT ? state : ns;
    case ARC_RL_TOKEN_BUCKET:
        return token_bucket(r, state, now, d, &changed);
    case ARC_RL_FIXED_WINDOW:
        return fixed_window(r, state, now, d, &changed);
    case ARC_RL_SLIDING_WINDOW:
        return sliding_window(r, state, now, d, &changed);
    }
    *d = (struct arc_rl_decision){ .verdict = ARC_RL_ALLOW };
    return state;
}

uint64_t arc_rl_unstep(const struct arc_rl_rule *r, uint64_t state, uint64_t now)
{
    (void)now;
    if (r->algo != ARC_RL_LEAKY_BUCKET && r->algo != ARC_RL_GCRA)
        return state;
    return state > r->t_ns ? state - r->t_ns : 0;
}

uint64_t arc_rl_rest_in(const struct arc_rl_rule *r, uint64_t state, uint64_t now)
{
    if (state == 0)
        return 0;
    uint64_t now_ms = now / MS, W = r->window_ms;
    switch (r->algo) {
    case ARC_RL_GCRA:
    case ARC_RL_LEAKY_BUCKET:
        return state > now ? state - now : 0;
    case ARC_RL_TOKEN_BUCKET: {
        uint64_t cap = (uint64_t)r->burst * 1000, tokens = (state >> 32) & 0x7fffffffu;
        int32_t el = (int32_t)((uint32_t)now_ms - (uint32_t)state);
        uint64_t need = (cap - (tokens < cap ? tokens : cap)) * 1000 / r->mqps;
        uint64_t elapsed = el > 0 ? (uint64_t)el : 0;
        return need > elapsed ? (need - elapsed) * MS : 0;
    }
    case ARC_RL_FIXED_WINDOW: {
        int32_t diff = (int32_t)((uint32_t)(now_ms / W) - (uint32_t)state);
        return diff <= 0 ? ((now_ms / W + 1) * W - now_ms) * MS + (uint64_t)(-(int64_t)diff) * W * MS : 0;
    }
    case ARC_RL_SLIDING_WINDOW: {
        uint64_t cur = now_ms / W, e = now_ms - cur * W;
        uint32_t diff = ((uint32_t)cur - (uint32_t)(state >> 40)) & SW_IDX_MASK;
        if (diff == 0 || diff >= 0x800000u)
            return ((W - e) + W) * MS;
        if (diff == 1 && (state & SW_MASK))
            return (W - e) * MS;
        return 0;
    }
    }
    return 0;
}
