/*
 * Flood guards' rate accounting (RFC 9113 §10.5): one token bucket per frame
 * kind, time injected, no I/O, so tests drive it with a fake clock.
 *
 * A bucket holds one second's worth of tokens (burst = rate) and refills
 * continuously. Tokens are kept in thousandths so a refill of `ms`
 * milliseconds adds exactly `ms * rate` of them with integer arithmetic and
 * no rounding drift, whatever the tick.
 *
 * Also resolves the limits (defaults for 0 fields), since the session and
 * the buckets must agree on them.
 */
#include "http2/http2.h"

#define WINDOW_MAX 0x7fffffffu   /* RFC 9113 §6.9.1: 2^31-1 */

static uint32_t or_default(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

void arc_h2_limits_resolve(const struct arc_h2_limits *in, struct arc_h2_limits *out)
{
    struct arc_h2_limits z = { 0 };

    if (!in)
        in = &z;
    out->max_concurrent_streams = or_default(in->max_concurrent_streams,
                                             ARC_H2_DEFAULT_MAX_CONCURRENT_STREAMS);
    out->max_header_list_size = or_default(in->max_header_list_size,
                                           ARC_H2_DEFAULT_MAX_HEADER_LIST_SIZE);
    out->max_continuations = or_default(in->max_continuations, ARC_H2_DEFAULT_MAX_CONTINUATIONS);
    out->resets_per_sec = or_default(in->resets_per_sec, ARC_H2_DEFAULT_RESETS_PER_SEC);
    out->settings_per_sec = or_default(in->settings_per_sec, ARC_H2_DEFAULT_SETTINGS_PER_SEC);
    out->pings_per_sec = or_default(in->pings_per_sec, ARC_H2_DEFAULT_PINGS_PER_SEC);
    out->priority_per_sec = or_default(in->priority_per_sec, ARC_H2_DEFAULT_PRIORITY_PER_SEC);
    out->empty_data_per_sec = or_default(in->empty_data_per_sec,
                                         ARC_H2_DEFAULT_EMPTY_DATA_PER_SEC);
    out->stream_window = ARC_MIN(or_default(in->stream_window, ARC_H2_DEFAULT_STREAM_WINDOW),
                                 WINDOW_MAX);
    out->conn_window = ARC_MIN(or_default(in->conn_window, ARC_H2_DEFAULT_CONN_WINDOW),
                               WINDOW_MAX);
}

const char *arc_h2_breach_name(enum arc_h2_breach b)
{
    static const char *const names[ARC_H2_BREACH__COUNT] = {
        [ARC_H2_BREACH_NONE] = "none",
        [ARC_H2_BREACH_RAPID_RESET] = "rapid_reset",
        [ARC_H2_BREACH_SETTINGS_FLOOD] = "settings_flood",
        [ARC_H2_BREACH_PING_FLOOD] = "ping_flood",
        [ARC_H2_BREACH_PRIORITY_FLOOD] = "priority_flood",
        [ARC_H2_BREACH_EMPTY_DATA_FLOOD] = "empty_data_flood",
        [ARC_H2_BREACH_CONTINUATION_FLOOD] = "continuation_flood",
        [ARC_H2_BREACH_OUTBOUND_FLOOD] = "outbound_flood",
    };
    return (unsigned)b < ARC_H2_BREACH__COUNT ? names[b] : "unknown";
}

enum arc_h2_breach arc_h2_flood_breach_of(enum arc_h2_flood_kind kind)
{
    switch (kind) {
    case ARC_H2_FLOOD_RESET:      return ARC_H2_BREACH_RAPID_RESET;
    case ARC_H2_FLOOD_SETTINGS:   return ARC_H2_BREACH_SETTINGS_FLOOD;
    case ARC_H2_FLOOD_PING:       return ARC_H2_BREACH_PING_FLOOD;
    case ARC_H2_FLOOD_PRIORITY:   return ARC_H2_BREACH_PRIORITY_FLOOD;
    case ARC_H2_FLOOD_EMPTY_DATA: return ARC_H2_BREACH_EMPTY_DATA_FLOOD;
    default:                      return ARC_H2_BREACH_NONE;
    }
}

void arc_h2_flood_init(struct arc_h2_flood *f, const struct arc_h2_limits *lim, uint64_t now_ms)
{
    const uint32_t rates[ARC_H2_FLOOD__KINDS] = {
        [ARC_H2_FLOOD_RESET] = lim->resets_per_sec,
        [ARC_H2_FLOOD_SETTINGS] = lim->settings_per_sec,
        [ARC_H2_FLOOD_PING] = lim->pings_per_sec,
        [ARC_H2_FLOOD_PRIORITY] = lim->priority_per_sec,
        [ARC_H2_FLOOD_EMPTY_DATA] = lim->empty_data_per_sec,
    };

    for (int k = 0; k < ARC_H2_FLOOD__KINDS; k++) {
        f->_b[k]._rate = rates[k];
        f->_b[k]._milli = (uint64_t)rates[k] * 1000u;
        f->_b[k]._at_ms = now_ms;
    }
}

bool arc_h2_flood_charge(struct arc_h2_flood *f, enum arc_h2_flood_kind kind, uint64_t now_ms)
{
    ARC_ASSERT((unsigned)kind < ARC_H2_FLOOD__KINDS);
    __typeof__(f->_b[0]) *b = &f->_b[kind];

    if (b->_rate == ARC_H2_UNLIMITED)
        return true;
    if (now_ms > b->_at_ms) {
        uint64_t cap = (uint64_t)b->_rate * 1000u;
        uint64_t elapsed = now_ms - b->_at_ms;
        /* Past one full second the bucket is full whatever the elapsed time;
         * the early cut also keeps elapsed * rate from overflowing. */
        if (elapsed >= 1000u || b->_milli + elapsed * b->_rate >= cap)
            b->_milli = cap;
        else
            b->_milli += elapsed * b->_rate;
        b->_at_ms = now_ms;
    }
    if (b->_milli < 1000u)
        return false;
    b->_milli -= 1000u;
    return true;
}
