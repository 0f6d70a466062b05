/*
 * Shared queues in C: the root context registers the queue "events" in
 * proxy_on_configure; a request with "x-enqueue: VALUE" resolves it by
 * name and enqueues VALUE (its status comes back as "x-enqueue-rc" on the
 * request); proxy_on_queue_ready drains the queue, counting the items
 * (counter "dequeued") and keeping the last one. A request with
 * "x-queue-stat: 1" gets "x-dequeued: N", "x-last: VALUE" and
 * "x-ready-root: ROOT" (the root context id proxy_on_queue_ready got);
 * "x-queue-errors: 1" gets "x-rcs" with the statuses of a resolve of an
 * unknown name, an enqueue to an unknown id, and a dequeue of the empty
 * queue.
 */
#include "pw.h"

IMPORT(proxy_register_shared_queue) u32 proxy_register_shared_queue(const char *n, size_t nl,
                                                                    u32 *id);
IMPORT(proxy_resolve_shared_queue) u32 proxy_resolve_shared_queue(const char *vm, size_t vl,
                                                                  const char *n, size_t nl,
                                                                  u32 *id);
IMPORT(proxy_enqueue_shared_queue) u32 proxy_enqueue_shared_queue(u32 id, const char *d, size_t dl);
IMPORT(proxy_dequeue_shared_queue) u32 proxy_dequeue_shared_queue(u32 id, char **d, size_t *dl);
IMPORT(proxy_define_metric) u32 proxy_define_metric(u32 type, const char *n, size_t nl, u32 *id);
IMPORT(proxy_increment_metric) u32 proxy_increment_metric(u32 id, long long v);

static u32 queue, counter, dequeued, ready_root;
static char last[64];
static size_t last_len;

EXPORT(proxy_on_configure) u32 proxy_on_configure(u32 root, u32 size)
{
    proxy_define_metric(0, "dequeued", 8, &counter);
    return proxy_register_shared_queue("events", 6, &queue) == 0;
}

static size_t utoa(u32 v, char *out)
{
    char t[12];
    size_t n = 0, k = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n)
        out[k++] = t[--n];
    return k;
}

EXPORT(proxy_on_queue_ready) void proxy_on_queue_ready(u32 root, u32 id)
{
    char *d;
    size_t n;
    ready_root = root;
    while (proxy_dequeue_shared_queue(id, &d, &n) == 0) {
        dequeued++;
        proxy_increment_metric(counter, 1);
        for (last_len = 0; last_len < n && last_len < sizeof(last); last_len++)
            last[last_len] = d[last_len];
    }
}

EXPORT(proxy_on_request_headers) u32 proxy_on_request_headers(u32 ctx, u32 nh, u32 eos)
{
    size_t l;
    char buf[40];
    char *v = pw_header(MAP_REQUEST, "x-enqueue", &l);
    if (v) {
        u32 id = 0, rc = proxy_resolve_shared_queue("", 0, "events", 6, &id);
        if (rc == 0)
            rc = proxy_enqueue_shared_queue(id, v, l);
        proxy_add_header_map_value(MAP_REQUEST, "x-enqueue-rc", 12, buf, utoa(rc, buf));
    }
    if (pw_header(MAP_REQUEST, "x-queue-stat", &l)) {
        proxy_add_header_map_value(MAP_REQUEST, "x-dequeued", 10, buf, utoa(dequeued, buf));
        proxy_add_header_map_value(MAP_REQUEST, "x-last", 6, last, last_len);
        proxy_add_header_map_value(MAP_REQUEST, "x-ready-root", 12, buf, utoa(ready_root, buf));
    }
    if (pw_header(MAP_REQUEST, "x-queue-errors", &l)) {
        u32 id = 0;
        char *d;
        size_t n, k = 0;
        k += utoa(proxy_resolve_shared_queue("", 0, "nope", 4, &id), buf + k);
        buf[k++] = ',';
        k += utoa(proxy_enqueue_shared_queue(999, "x", 1), buf + k);
        buf[k++] = ',';
        k += utoa(proxy_dequeue_shared_queue(queue, &d, &n), buf + k);
        proxy_add_header_map_value(MAP_REQUEST, "x-rcs", 5, buf, k);
    }
    return CONTINUE;
}
