/**
 * OTLP/HTTP JSON export of sampled traces (observability.tracing.endpoint).
 *
 * Workers push the same fixed records as the access log (accesslog.h) into
 * their own bounded span queue (an SPSC ring; full = dropped and counted);
 * one exporter thread drains the queues every flush_interval and POSTs two
 * spans per request to the collector: Arc's server span (parent: the
 * client's span, if it sent a traceparent) and a client span for the
 * upstream hop (its id is the one forwarded upstream in traceparent), with
 * the standard HTTP semantic-convention attributes. An export that fails
 * (connect, timeout, non-2xx) loses its spans and counts them.
 *
 * Thread: start/stop on the main thread around the workers' lives;
 * arc_otlp_ring from workers; stats/render from any thread.
 */
#ifndef ARC_OBS_OTLP_H
#define ARC_OBS_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sbuf.h"
#include "obs/accesslog.h"

struct arc_tracing_conf;

int arc_otlp_start(const struct arc_tracing_conf *conf, const char *service_instance,
                   size_t n_workers, char *err, size_t errlen);
void arc_otlp_stop(void);
/* Worker `id`'s span queue, or NULL when export is off. */
struct arc_alog_ring *arc_otlp_ring(unsigned id);
/* Prometheus text of the exporter's counters (nothing when off). */
void arc_otlp_render_metrics(struct arc_sbuf *o);

/* The OTLP JSON spans of one record (two, or one without an upstream
 * attempt), each preceded by a comma unless *first. For the unit test. */
void arc_otlp_spans(struct arc_sbuf *o, const struct arc_alog_rec *r, bool *first);

#endif
