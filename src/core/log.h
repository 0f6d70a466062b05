/**
 * Arc's own diagnostic messages (startup, reloads, errors, warnings): the
 * "system log".
 *
 * Each message is one record: a level, a text, and for configuration errors
 * the file:line:col it points at. It is written
 *   - to stderr: as human-readable text ("arc: <text>", or
 *     "<file>:<line>:<col>: error: <text>") when stderr is a terminal, as one
 *     NDJSON line otherwise; ARC_LOG_FORMAT=text|json|auto overrides (auto is
 *     the default). Before arc_log_init (the CLI commands: check, config,
 *     logs) it is always text.
 *   - to the sink, when one is set (the access-log writer: logging.output's
 *     file and/or stdout), always as NDJSON:
 *       {"ts":"2026-12-07T12:20:16.123456789Z","kind":"system","level":"info",
 *        "msg":"...", "file":"...","line":4,"col":7}
 *     (file/line/col only for configuration errors). Records made before the
 *     sink is set are kept (up to ARC_LOG_EARLY_BYTES) and handed to it when
 *     it is set, so the startup messages reach the file too.
 *
 * Not for the hot path: a record takes a mutex (stdio takes one anyway).
 * Thread: any.
 */
#ifndef ARC_CORE_LOG_H
#define ARC_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum arc_log_level { ARC_LOG_DEBUG, ARC_LOG_INFO, ARC_LOG_WARN, ARC_LOG_ERROR };

#define ARC_LOG_EARLY_BYTES 65536

/* Reads ARC_LOG_FORMAT and whether stderr is a terminal (arc run only). */
void arc_log_init(void);

void arc_log(enum arc_log_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A configuration error (or warning) at file:line:col (line 0: the whole
 * file), with the same text as arc_config_errors_print. */
void arc_log_at(enum arc_log_level lv, const char *file, int line, int col, const char *msg);

/* The sink gets each record as one NDJSON line with its '\n'; it must not
 * call arc_log. NULL removes it (then records are no longer kept for it). */
typedef void (*arc_log_sink_fn)(const char *line, size_t len);
void arc_log_set_sink(arc_log_sink_fn fn);

const char *arc_log_level_name(enum arc_log_level lv);

/* The NDJSON line of one record (no '\n', NUL-terminated, truncated to
 * len - 1). Exposed for the unit test. */
size_t arc_log_format_json(char *out, size_t len, uint64_t ts_ns, enum arc_log_level lv,
                           const char *msg, const char *file, int line, int col);

#endif
