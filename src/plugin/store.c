/*
 * What a plugin keeps per worker beyond an exchange: shared data
 * (proxy_get/set_shared_data), shared queues (proxy_*_shared_queue and
 * proxy_on_queue_ready) and metrics (proxy_*_metric, summed over workers in
 * /metrics). The scopes are in docs/plugins.md; every pointer and length
 * from the guest is checked as in abi.c.
 */
#include "plugin/plugin_int.h"
#include "core/sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ shared data */

static struct arc_pl_shared *shared_find(struct arc_pl_wslot *s, const uint8_t *k, uint32_t kn)
{
    for (uint32_t i = 0; i < s->n_shared; i++)
        if (s->shared[i].klen == kn && memcmp(s->shared[i].key, k, kn) == 0)
            return &s->shared[i];
    return NULL;
}

uint32_t arc_pl__h_get_shared_data(void *e, uint32_t kp, uint32_t kn, uint32_t ret_ptr,
                                  uint32_t ret_size, uint32_t ret_cas)
{
    struct arc_pl_inst *in = e;
    const uint8_t *k = arc_pl__gmem(in, kp, kn);
    if (!k || !arc_pl__gmem(in, ret_cas, 4))
        return WR_INVALID_MEMORY;
    struct arc_pl_shared *d = shared_find(in->slot, k, kn);
    if (!d)
        return WR_NOT_FOUND;
    uint32_t cas = d->cas;
    /* (the guest's allocator may run: d is not used after this) */
    uint32_t rc = arc_pl__ret_bytes(in, d->value, d->vlen, ret_ptr, ret_size);
    if (rc == WR_OK)
        arc_pl__put_u32(in, ret_cas, cas);
    return rc;
}

uint32_t arc_pl__h_set_shared_data(void *e, uint32_t kp, uint32_t kn, uint32_t vp, uint32_t vn,
                                  uint32_t cas)
{
    struct arc_pl_inst *in = e;
    struct arc_pl_wslot *s = in->slot;
    const uint8_t *k = arc_pl__gmem(in, kp, kn), *v = arc_pl__gmem(in, vp, vn);
    if (!k || !v)
        return WR_INVALID_MEMORY;
    struct arc_pl_shared *d = shared_find(s, k, kn);
    if (cas && (!d || d->cas != cas))
        return WR_CAS_MISMATCH;
    size_t old = d ? (size_t)d->klen + d->vlen : 0;
    if (s->shared_bytes - old + kn + vn > ARC_PL_SHARED_MAX_BYTES ||
        (!d && s->n_shared >= ARC_PL_SHARED_MAX_KEYS))
        return WR_BAD_ARGUMENT;
    char *nv = malloc(vn ? vn : 1);
    if (!nv)
        return WR_INTERNAL;
    if (vn)
        memcpy(nv, v, vn);
    if (!d) {
        if (s->n_shared == s->cap_shared) {
            uint32_t cap = s->cap_shared ? s->cap_shared * 2 : 8;
            struct arc_pl_shared *t = realloc(s->shared, cap * sizeof(*t));
            if (!t) {
                free(nv);
                return WR_INTERNAL;
            }
            s->shared = t;
            s->cap_shared = cap;
        }
        char *nk = malloc(kn ? kn : 1);
        if (!nk) {
            free(nv);
            return WR_INTERNAL;
        }
        if (kn)
            memcpy(nk, k, kn);
        d = &s->shared[s->n_shared++];
        *d = (struct arc_pl_shared){ .key = nk, .klen = kn };
    }
    free(d->value);
    d->value = nv;
    d->vlen = vn;
    if (++s->next_cas == 0)
        s->next_cas = 1;
    d->cas = s->next_cas;
    s->shared_bytes = s->shared_bytes - old + kn + vn;
    return WR_OK;
}

/* ------------------------------------------------------------ shared queues */

static struct arc_pl_queue *queue_by_name(struct arc_pl_wslot *s, const uint8_t *n, uint32_t nl,
                                          uint32_t *id)
{
    for (uint32_t i = 0; i < s->n_queues; i++)
        if (s->queues[i].nlen == nl && memcmp(s->queues[i].name, n, nl) == 0) {
            *id = i + 1;
            return &s->queues[i];
        }
    return NULL;
}

static struct arc_pl_queue *queue_by_id(struct arc_pl_wslot *s, uint32_t id)
{
    return id >= 1 && id <= s->n_queues ? &s->queues[id - 1] : NULL;
}

/* The queue is owned by the calling instance's root context: the one being
 * configured, or the root of the HTTP context being called. */
uint32_t arc_pl__h_register_queue(void *e, uint32_t np, uint32_t nl, uint32_t ret)
{
    struct arc_pl_inst *in = e;
    struct arc_pl_wslot *s = in->slot;
    const uint8_t *n = arc_pl__gmem(in, np, nl);
    if (!n || !arc_pl__gmem(in, ret, 4))
        return WR_INVALID_MEMORY;
    if (nl == 0 || nl > 256)
        return WR_BAD_ARGUMENT;
    uint32_t id;
    struct arc_pl_queue *q = queue_by_name(s, n, nl, &id);
    if (!q) {
        if (s->n_queues >= in->pl->max_queues)
            return WR_BAD_ARGUMENT;
        if (!s->queues && !(s->queues = calloc(in->pl->max_queues, sizeof(*s->queues))))
            return WR_INTERNAL;
        char *name = malloc(nl);
        if (!name)
            return WR_INTERNAL;
        memcpy(name, n, nl);
        q = &s->queues[s->n_queues++];
        *q = (struct arc_pl_queue){ .name = name, .nlen = nl };
        id = s->n_queues;
    }
    q->owner = (uint32_t)(in - s->inst);
    q->root = in->cur ? in->cur->root + 1 : in->root_now ? in->root_now : in->cfg_root + 1;
    arc_pl__put_u32(in, ret, id);
    return WR_OK;
}

/* vm_id is not used: queues are per plugin (per worker). */
uint32_t arc_pl__h_resolve_queue(void *e, uint32_t vp, uint32_t vl, uint32_t np, uint32_t nl,
                                uint32_t ret)
{
    struct arc_pl_inst *in = e;
    const uint8_t *n = arc_pl__gmem(in, np, nl);
    if (!arc_pl__gmem(in, vp, vl) || !n || !arc_pl__gmem(in, ret, 4))
        return WR_INVALID_MEMORY;
    uint32_t id;
    if (!queue_by_name(in->slot, n, nl, &id))
        return WR_NOT_FOUND;
    arc_pl__put_u32(in, ret, id);
    return WR_OK;
}

uint32_t arc_pl__h_enqueue(void *e, uint32_t id, uint32_t dp, uint32_t dl)
{
    struct arc_pl_inst *in = e;
    struct arc_pl_wslot *s = in->slot;
    const uint8_t *d = arc_pl__gmem(in, dp, dl);
    if (!d)
        return WR_INVALID_MEMORY;
    struct arc_pl_queue *q = queue_by_id(s, id);
    if (!q)
        return WR_NOT_FOUND;
    if (q->n >= in->pl->max_queue_items || q->bytes + dl > in->pl->max_queue_bytes)
        return WR_BAD_ARGUMENT;         /* full */
    struct arc_pl_qitem *it = malloc(sizeof(*it) + (dl ? dl : 1));
    if (!it)
        return WR_INTERNAL;
    it->next = NULL;
    it->len = dl;
    if (dl)
        memcpy(it->data, d, dl);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->n++;
    q->bytes += dl;
    q->ready = true;
    s->queue_ready = true;
    return WR_OK;
}

uint32_t arc_pl__h_dequeue(void *e, uint32_t id, uint32_t ret_ptr, uint32_t ret_size)
{
    struct arc_pl_inst *in = e;
    struct arc_pl_wslot *s = in->slot;
    if (!arc_pl__gmem(in, ret_ptr, 4) || !arc_pl__gmem(in, ret_size, 4))
        return WR_INVALID_MEMORY;
    struct arc_pl_queue *q = queue_by_id(s, id);
    if (!q)
        return WR_NOT_FOUND;
    if (!q->head)
        return WR_EMPTY;
    struct arc_pl_qitem *it = q->head;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    q->bytes -= it->len;
    /* In limbo while the guest's allocator runs (a trap there must not
     * leak it; the next dequeue or the set's end frees it). */
    free(s->limbo);
    s->limbo = it;
    uint32_t rc = arc_pl__ret_bytes(in, it->data, it->len, ret_ptr, ret_size);
    if (s->limbo == it) {
        free(it);
        s->limbo = NULL;
    }
    return rc;
}

#define QUEUE_ROUNDS 4

void arc_pl__queues_deliver(struct arc_pl_wslot *s)
{
    /* A few rounds: proxy_on_queue_ready may enqueue again (what is left
     * is delivered after the worker's next call into the plugin). */
    for (int round = 0; round < QUEUE_ROUNDS && s->queue_ready; round++) {
        s->queue_ready = false;
        for (uint32_t i = 0; i < s->n_queues; i++) {
            struct arc_pl_queue *q = &s->queues[i];
            if (!q->ready || !q->head)
                continue;
            struct arc_pl_inst *in = &s->inst[q->owner];
            if (in->dead)
                continue;               /* (ready stays: delivered once it is rebuilt and
                                           the queue gets an item) */
            q->ready = false;
            uint32_t rv;
            in->cur = NULL;
            in->root_now = q->root;
            int code = arc_pl__call(in, PLX_ON_QUEUE_READY, &rv, 2, q->root, i + 1, 0);
            in->root_now = 0;
            if (code)
                fprintf(stderr, "arc: plugin '%s' failed in proxy_on_queue_ready: %s\n",
                        in->pl->name, arc_pl__trap_text(code));
        }
    }
}

void arc_pl__queues_free(struct arc_pl_wslot *s)
{
    for (uint32_t i = 0; i < s->n_queues; i++) {
        struct arc_pl_qitem *it = s->queues[i].head;
        while (it) {
            struct arc_pl_qitem *nx = it->next;
            free(it);
            it = nx;
        }
        free(s->queues[i].name);
    }
    free(s->queues);
    free(s->limbo);
    s->queues = NULL;
    s->limbo = NULL;
    s->n_queues = 0;
}

/* ------------------------------------------------------------ metrics */

static bool metric_name_ok(const uint8_t *p, uint32_t n)
{
    if (n == 0 || n >= sizeof(((struct arc_pl_metric_def *)0)->name))
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || strchr("_.:-/", p[i])))
            return false;
    return true;
}

uint32_t arc_pl__h_define_metric(void *e, uint32_t type, uint32_t np, uint32_t nn, uint32_t ret)
{
    struct arc_pl_inst *in = e;
    struct arc_pl_plugin *pl = (struct arc_pl_plugin *)in->pl;
    const uint8_t *name = arc_pl__gmem(in, np, nn);
    if (!name || !arc_pl__gmem(in, ret, 4))
        return WR_INVALID_MEMORY;
    if (type > 2 || !metric_name_ok(name, nn))
        return WR_BAD_ARGUMENT;
    uint32_t n = atomic_load_explicit(&pl->n_metrics, memory_order_acquire), id = UINT32_MAX;
    for (uint32_t i = 0; i < n && id == UINT32_MAX; i++)
        if (strlen(pl->metric_defs[i].name) == nn && memcmp(pl->metric_defs[i].name, name, nn) == 0)
            id = i;
    if (id == UINT32_MAX) {
        pthread_mutex_lock(&pl->metric_lock);
        n = atomic_load_explicit(&pl->n_metrics, memory_order_relaxed);
        for (uint32_t i = 0; i < n && id == UINT32_MAX; i++)
            if (strlen(pl->metric_defs[i].name) == nn &&
                memcmp(pl->metric_defs[i].name, name, nn) == 0)
                id = i;
        if (id == UINT32_MAX && n < ARC_PL_MAX_METRICS) {
            memcpy(pl->metric_defs[n].name, name, nn);
            pl->metric_defs[n].name[nn] = '\0';
            pl->metric_defs[n].type = type;
            atomic_store_explicit(&pl->n_metrics, n + 1, memory_order_release);
            id = n;
        }
        pthread_mutex_unlock(&pl->metric_lock);
    }
    if (id == UINT32_MAX || pl->metric_defs[id].type != type)
        return WR_BAD_ARGUMENT;         /* full, or the name has another type */
    arc_pl__put_u32(in, ret, id);
    return WR_OK;
}

static struct arc_pl_metric_val *metric_of(struct arc_pl_inst *in, uint32_t id, uint32_t *type)
{
    if (id >= atomic_load_explicit(&in->pl->n_metrics, memory_order_acquire))
        return NULL;
    *type = in->pl->metric_defs[id].type;
    return &in->slot->metrics[id];
}

uint32_t arc_pl__h_increment_metric(void *e, uint32_t id, uint64_t off)
{
    uint32_t type;
    struct arc_pl_metric_val *m = metric_of(e, id, &type);
    if (!m || type == 2 || (type == 0 && (int64_t)off < 0))
        return m ? WR_BAD_ARGUMENT : WR_NOT_FOUND;
    atomic_store_explicit(&m->v, atomic_load_explicit(&m->v, memory_order_relaxed) + (int64_t)off,
                          memory_order_relaxed);
    return WR_OK;
}

uint32_t arc_pl__h_record_metric(void *e, uint32_t id, uint64_t value)
{
    uint32_t type;
    struct arc_pl_metric_val *m = metric_of(e, id, &type);
    if (!m)
        return WR_NOT_FOUND;
    if (type == 0)
        return WR_BAD_ARGUMENT;
    if (type == 1) {
        atomic_store_explicit(&m->v, (int64_t)value, memory_order_relaxed);
        return WR_OK;
    }
    atomic_store_explicit(&m->v, atomic_load_explicit(&m->v, memory_order_relaxed) + (int64_t)value,
                          memory_order_relaxed);
    atomic_store_explicit(&m->n, atomic_load_explicit(&m->n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return WR_OK;
}

uint32_t arc_pl__h_get_metric(void *e, uint32_t id, uint32_t ret)
{
    struct arc_pl_inst *in = e;
    uint32_t type;
    if (!metric_of(in, id, &type))
        return WR_NOT_FOUND;
    uint8_t *p = arc_pl__gmem(in, ret, 8);
    if (!p)
        return WR_INVALID_MEMORY;
    int64_t sum = 0;                    /* over every worker (relaxed reads) */
    for (unsigned w = 0; w < in->pl->n_workers; w++)
        sum += atomic_load_explicit(&in->pl->w[w].metrics[id].v, memory_order_relaxed);
    memcpy(p, &sum, 8);
    return WR_OK;
}

void arc_plugin_metrics_render(struct arc_sbuf *out, const struct arc_pl_set *set)
{
    static const char *const kind[3] = { "counter", "gauge", "histogram" };
    bool head[3] = { false, false, false };
    for (size_t i = 0; set && i < set->n; i++) {
        const struct arc_pl_plugin *pl = &set->pl[i];
        uint32_t n = pl->w ? atomic_load_explicit(&((struct arc_pl_plugin *)pl)->n_metrics,
                                                  memory_order_acquire) : 0;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t t = pl->metric_defs[k].type;
            int64_t v = 0;
            uint64_t cnt = 0;
            for (unsigned w = 0; w < pl->n_workers; w++) {
                v += atomic_load_explicit(&pl->w[w].metrics[k].v, memory_order_relaxed);
                cnt += atomic_load_explicit(&pl->w[w].metrics[k].n, memory_order_relaxed);
            }
            if (!head[t]) {
                head[t] = true;
                arc_sbuf_printf(out, "# HELP arc_plugin_%s Metrics plugins define "
                                "(proxy_define_metric), summed over workers.\n"
                                "# TYPE arc_plugin_%s %s\n", kind[t], kind[t],
                                t == 2 ? "summary" : kind[t]);
            }
            if (t == 2)
                arc_sbuf_printf(out, "arc_plugin_histogram_sum{plugin=\"%s\",name=\"%s\"} %lld\n"
                                "arc_plugin_histogram_count{plugin=\"%s\",name=\"%s\"} %llu\n",
                                pl->name, pl->metric_defs[k].name, (long long)v, pl->name,
                                pl->metric_defs[k].name, (unsigned long long)cnt);
            else
                arc_sbuf_printf(out, "arc_plugin_%s{plugin=\"%s\",name=\"%s\"} %lld\n", kind[t],
                                pl->name, pl->metric_defs[k].name, (long long)v);
        }
    }
}
