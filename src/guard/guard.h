/**
 * L7 guards: the checks that keep a worker serving real clients while
 * slow, numerous or handshake-heavy clients try to hold it.
 *
 *  - a node-wide per-client-address table (IPv4 /32, IPv6 by prefix) of
 *    open connections, incomplete requests and TLS handshakes in the
 *    current second, read at accept and at a head's first byte;
 *  - a minimum receive rate for request heads and bodies, judged over
 *    windows (the first window is the grace period);
 *  - the names of the reasons a guard trips (metrics label values) and a
 *    rate-limited line in the system log per reason.
 *
 * The table is a fixed count-min layout: every worker owns one row block
 * (ARC_GUARD_HASHES rows of security.l7.max_tracked_addresses cells,
 * ARC_GUARD_SLOTS by default, rounded up to a power of two; set at start)
 * and is its only writer,
 * with relaxed load + store (no locked instruction, no lock). A reader sums
 * one cell per row over all workers and takes the minimum over the rows:
 * the true count or, when other addresses share both cells, more (a
 * collision can refuse early, never let an address past its limit). The
 * slot hash is keyed with a random per-process seed, so a client cannot
 * aim its addresses at another's cells. Thread: workers (each passes its
 * own id); arc_guard_attach on the control thread before a worker starts.
 */
#ifndef ARC_GUARD_GUARD_H
#define ARC_GUARD_GUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define ARC_GUARD_MAX_WORKERS 256
#define ARC_GUARD_SLOTS 16384u          /* cells per row by default (power of two) */
#define ARC_GUARD_MAX_SLOTS 65536u      /* (a slot index is 16 bits) */
#define ARC_GUARD_HASHES 2

/* Why a guard tripped (labels of arc_guard_trips_total{reason}). */
enum arc_guard_reason {
    ARC_GR_HEADERS_TIMEOUT,             /* head not complete within headers_timeout */
    ARC_GR_MIN_RATE_HEAD,               /* head bytes below min_recv_rate_bps */
    ARC_GR_MIN_RATE_BODY,               /* body bytes below min_recv_rate_bps */
    ARC_GR_MAX_INCOMPLETE_PER_IP,       /* a new head over max_incomplete_per_ip */
    ARC_GR_MAX_CONNECTIONS_PER_IP,      /* accept over max_connections_per_ip */
    ARC_GR_TLS_HANDSHAKE_RATE,          /* accept over handshakes_per_ip_per_sec */
    ARC_GR_TLS_HANDSHAKE_BUDGET,        /* accept over max_handshakes_per_worker */
    ARC_GR__COUNT
};
const char *arc_guard_reason_name(enum arc_guard_reason r);

/* Counted columns of a table cell. */
enum arc_guard_col { ARC_GC_CONNS, ARC_GC_INCOMPLETE };

/* A client's cells (from its address): kept by the connection so every
 * increment is undone on the same cells, whatever a reload changes. */
struct arc_guard_key {
    uint16_t slot[ARC_GUARD_HASHES];
    bool valid;                         /* false: address unknown, nothing counted */
};

/* A receive-rate window: an HTTP/1 connection's current request, or one
 * HTTP/2 stream's request body. */
struct arc_guard_rate {
    uint64_t start_ms;                  /* current window (0: not started) */
    uint64_t bytes;                     /* received in it */
};

/* Per-connection guard state (embedded in the client connection). */
struct arc_guard_conn {
    struct arc_guard_key key;
    bool counted_conn;                  /* holds one ARC_GC_CONNS */
    bool counted_incomplete;            /* holds one ARC_GC_INCOMPLETE (HTTP/1) */
    uint32_t h2_incomplete;             /* HTTP/2: holds this many ARC_GC_INCOMPLETE */
    bool hs_pending;                    /* holds one of the worker's handshake slots */
    struct arc_guard_rate rate;         /* HTTP/1: the current request's */
};

/* Gives worker `id` its row block (zeroed) of `slots` cells per row
 * (arc_guard_slots_for; 0 = ARC_GUARD_SLOTS); idempotent. The first attach
 * fixes the layout: -1 when a later one asks for another size, on out of
 * memory, or id >= ARC_GUARD_MAX_WORKERS. Thread: control, before the
 * worker runs. */
int arc_guard_attach(unsigned id, uint32_t slots);
/* The cells per row a table asked for `want` gets: the next power of two,
 * at most ARC_GUARD_MAX_SLOTS. */
uint32_t arc_guard_slots_for(uint32_t want);
/* Frees every block and forgets the layout (tests; no worker may run). */
void arc_guard_reset(void);

/* The cells of an address: IPv4 (and IPv4-mapped IPv6) by /32, IPv6 by
 * its first `v6_prefix` bits. key->valid is false for other families. */
void arc_guard_key_of(const struct sockaddr *sa, unsigned v6_prefix, struct arc_guard_key *key);

/* The node-wide count of `col` for the key (see the header comment). */
uint32_t arc_guard_count(const struct arc_guard_key *key, enum arc_guard_col col);
/* Adds +1 / -1 to worker `id`'s cells of the key. */
void arc_guard_inc(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col);
void arc_guard_dec(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col);
/* Counts one more for worker `id` if the node-wide count stays within
 * cap: true = counted (give it back with arc_guard_dec), false = over the
 * cap, nothing counted. Workers admitting at the same instant never pass
 * the cap together; the race can refuse one early. An invalid key is
 * admitted and not counted. */
bool arc_guard_admit(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col,
                     uint32_t cap);
/* Adds `d` (may be negative) to worker `id`'s cells of the key. */
void arc_guard_add(unsigned id, const struct arc_guard_key *key, enum arc_guard_col col, int32_t d);

/* TLS handshakes of the key in the whole second `sec` (node-wide), and
 * one more counted by worker `id`. */
uint32_t arc_guard_hs_count(const struct arc_guard_key *key, uint32_t sec);
void arc_guard_hs_add(unsigned id, const struct arc_guard_key *key, uint32_t sec);

/* Minimum receive rate. Starts a window at now_ms. */
void arc_guard_rate_start(struct arc_guard_rate *g, uint64_t now_ms);
/* Counts `bytes` received at now_ms; false when the window that just
 * closed carried fewer than min_bps bytes per second. A window closes at
 * the first receive at least `window_ms` after it started (the first one
 * is the grace period); a passed window starts the next. min_bps 0 = off. */
bool arc_guard_rate_feed(struct arc_guard_rate *g, uint64_t bytes, uint64_t now_ms,
                         uint32_t min_bps, uint64_t window_ms);

/* Logs a trip on stderr at most once per reason per worker every 10s
 * (the line says how many tripped since the last one). */
struct arc_guard_log {
    uint64_t last_ms[ARC_GR__COUNT];
    uint64_t held[ARC_GR__COUNT];
};
void arc_guard_log_trip(struct arc_guard_log *l, unsigned worker, enum arc_guard_reason r,
                        const struct sockaddr *peer, uint64_t now_ms);

#endif
