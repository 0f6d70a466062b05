/**
 * Active health checks (upstreams[].health.active): one health-check
 * thread probes every endpoint of every upstream that asks for it with an
 * HTTP/1.1 GET of `path` (a fresh connection each time, Connection: close;
 * over TLS with the upstream's client context when it has `tls`; a GET
 * stream on an HTTP/2 connection with protocol: http2),
 * every `interval` jittered by up to 10 %, and reads the status line with
 * the data plane's response parser (arc_h1_parse_response). A check passes
 * when the status is in expect_status before `timeout`; fail_after failed
 * checks in a row mark the endpoint down, pass_after passed ones up again.
 * An endpoint starts up (traffic is not held back until a first check).
 *
 * Results are published node-wide by endpoint id: workers read
 * arc_active_down() when arc_active_gen() moved (one relaxed load per
 * pick otherwise) and leave down endpoints out like ejected ones.
 *
 * This is a dedicated thread with its own poll() loop over non-blocking
 * sockets, not the control thread's io_uring loop: the control loop's
 * operation encoding has no room for a third connection kind, and a probe
 * must never delay the admin and control-plane answers.
 *
 * Thread: start/stop from the main thread; the readers from any thread.
 */
#ifndef ARC_UPSTREAM_ACTIVE_H
#define ARC_UPSTREAM_ACTIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Starts the health-check thread (it follows the published snapshot).
 * 0 or -errno. */
int arc_active_start(void);
/* Stops and joins it (no-op if not started). */
void arc_active_stop(void);

/* Bumped whenever an endpoint goes down or up. */
uint64_t arc_active_gen(void);
/* Is endpoint `ep_id` down by its active checks? (false if never checked) */
bool arc_active_down(uint32_t ep_id);

/* For the admin API: the endpoint's last check (0 = none yet; -1 = no
 * answer: refused, reset or timed out) and its counts in a row. */
struct arc_active_view {
    bool down;
    int last_status;
    uint32_t passes, fails;
    uint64_t checks;
};
bool arc_active_get(uint32_t ep_id, struct arc_active_view *out);

/* Pure: does `status` pass expect ranges lo[i]..hi[i]? */
bool arc_active_expect(const uint16_t *lo, const uint16_t *hi, size_t n, int status);

#endif
