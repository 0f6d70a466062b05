/**
 * Passive health: outlier ejection from the outcomes of real requests, per
 * worker per endpoint (nothing shared: each worker judges the endpoints by
 * the traffic it sent them).
 *
 * An endpoint is ejected (skipped by every balancer) when either rule fires:
 * - consecutive_failures attempts in a row failed;
 * - over the error-rate window (a sliding window approximated by the current
 *   and the previous fixed window, weighted by overlap), at least
 *   min_requests attempts were made and the failed share reached
 *   error_rate_threshold.
 * It stays out for ejection_time times the number of ejections in a row
 * (capped by max_ejection_time), then is re-admitted; an endpoint that
 * stays in for as long as its last ejection lasted starts from 1 again.
 * The caller enforces max_ejection_percent (arc_health_may_eject) and the
 * panic threshold, since both look at the whole upstream.
 *
 * A failure is a connect failure or timeout, a reset or timeout before the
 * response head, a malformed response, or a 5xx status.
 *
 * Thread: the table's owning worker writes; the control thread reads the
 * published fields (state, reason, ejections) with relaxed loads through
 * arc_health_get, as with the metrics tables (a grown table is a new array,
 * the old one kept until dispose).
 */
#ifndef ARC_UPSTREAM_HEALTH_H
#define ARC_UPSTREAM_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

enum arc_hstate { ARC_HS_HEALTHY = 0, ARC_HS_EJECTED = 1 };

/* Why an endpoint was (last) ejected. */
enum arc_hreason {
    ARC_HR_NONE = 0,
    ARC_HR_CONSECUTIVE,         /* consecutive_failures */
    ARC_HR_ERROR_RATE,          /* error_rate_threshold over window */
    ARC_HR__COUNT
};
extern const char *const arc_health_reason_names[ARC_HR__COUNT];

struct arc_hep {
    /* private to the owning worker */
    uint32_t consec;
    uint32_t cur_n, cur_fail, prev_n, prev_fail;
    uint64_t win_start;
    uint64_t until;             /* ejected until (ms), while state is EJECTED */
    uint64_t readmitted;        /* when last re-admitted */
    uint64_t last_len;          /* how long the last ejection lasted */
    uint32_t mult;              /* ejections in a row */
    /* published (relaxed) */
    _Atomic uint8_t state;      /* enum arc_hstate */
    _Atomic uint8_t reason;     /* enum arc_hreason of the current or last ejection */
    _Atomic uint64_t ejections[ARC_HR__COUNT]; /* by reason, since start */
};

struct arc_htable {
    _Atomic(struct arc_hep *) v;
    _Atomic size_t n;
    struct arc_hep **retired;
    size_t n_retired;
};

/* Grows the table to n rows (new rows healthy). -1 on out of memory. */
int arc_htable_fit(struct arc_htable *t, size_t n);
void arc_htable_dispose(struct arc_htable *t);
/* The owner's row (id < n). */
static inline struct arc_hep *arc_htable_row(struct arc_htable *t, size_t id)
{
    return &atomic_load_explicit(&t->v, memory_order_relaxed)[id];
}

/* Reader's view (any thread): state, reason and the ejection count of row
 * id; false when the table has no such row yet. */
struct arc_health_view {
    enum arc_hstate state;
    enum arc_hreason reason;
    uint64_t ejections[ARC_HR__COUNT];
};
bool arc_health_get(const struct arc_htable *t, size_t id, struct arc_health_view *out);

/* Prometheus series for the endpoints of every upstream of `s` with
 * health.passive on, summed over the workers' tables:
 * arc_upstream_endpoint_ejected (workers that have it ejected now) and
 * arc_upstream_endpoint_ejections_total by reason. Thread: any. */
struct arc_sbuf;
struct arc_snapshot;
void arc_health_render(struct arc_sbuf *o, const struct arc_htable *const *tabs, size_t n,
                       const struct arc_snapshot *s);

/* Records one attempt's outcome; returns the rule that now asks for an
 * ejection (ARC_HR_NONE: none). No-op on an ejected endpoint. */
enum arc_hreason arc_health_record(const struct arc_passive_conf *pc, struct arc_hep *h,
                                   bool ok, uint64_t now_ms);
/* Ejects the endpoint for reason r from now. Returns the readmission time. */
uint64_t arc_health_eject(const struct arc_passive_conf *pc, struct arc_hep *h,
                          enum arc_hreason r, uint64_t now_ms);
/* Re-admits an ejected endpoint whose time is up; true if it did. */
bool arc_health_readmit(struct arc_hep *h, uint64_t now_ms);

/* max_ejection_percent: may one more of n endpoints be ejected when
 * `ejected` already are? */
static inline bool arc_health_may_eject(const struct arc_passive_conf *pc, size_t ejected,
                                        size_t n)
{
    return (ejected + 1) * 100 <= (uint64_t)pc->max_ejection_percent * n;
}

/* Panic: fewer than panic_threshold percent of n usable. */
static inline bool arc_health_panic(uint32_t panic_threshold, size_t usable, size_t n)
{
    return (uint64_t)usable * 100 < (uint64_t)panic_threshold * n;
}

#endif
