/*
 * The proxy-wasm ABI (0.2.0 / 0.2.1) host functions (shared data, queues
 * and metrics are in store.c, HTTP calls in calls.c), and the per-exchange HTTP contexts: header,
 * body and trailer stages, pause and resume.
 *
 * Every pointer and length from the guest is checked against the linear
 * memory's current size before use (the memory may move when the guest
 * grows it, so it is looked up again after any call into the guest).
 * Results are returned in memory allocated with the guest's own allocator
 * (proxy_on_memory_allocate, or malloc for 0.2.0 modules), even when empty:
 * the AssemblyScript SDK frees what it gets back.
 *
 * Per HTTP context: proxy_on_context_create(id, root=1) at its first
 * stage, on_request_headers / on_response_headers, then on_done, on_log
 * and on_delete when the exchange ends. A context whose instance was
 * discarded meanwhile because another exchange's call failed (gen changed)
 * is gone: its next stage creates a new context on the rebuilt instance
 * (the filter's per-context state from earlier stages is lost, the
 * exchange is otherwise unaffected).
 */
#include "core/log.h"
#include "plugin/plugin_int.h"
#include "core/sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

enum { MAP_REQUEST_HEADERS = 0, MAP_REQUEST_TRAILERS = 1, MAP_RESPONSE_HEADERS = 2,
       MAP_RESPONSE_TRAILERS = 3, MAP_CALL_RESPONSE_HEADERS = 6, MAP_CALL_RESPONSE_TRAILERS = 7 };
enum { BUF_REQUEST_BODY = 0, BUF_RESPONSE_BODY = 1, BUF_CALL_RESPONSE_BODY = 4,
       BUF_VM_CONFIGURATION = 6, BUF_PLUGIN_CONFIGURATION = 7 };

/* ------------------------------------------------------------ memory */

/* Copies len bytes into fresh guest memory and stores its address and size. */
uint32_t arc_pl__ret_bytes(struct arc_pl_inst *in, const void *data, size_t len,
                          uint32_t ret_ptr, uint32_t ret_size)
{
    if (len > UINT32_MAX / 2)
        return WR_BAD_ARGUMENT;
    if (!arc_pl__gmem(in, ret_ptr, 4) || !arc_pl__gmem(in, ret_size, 4))
        return WR_INVALID_MEMORY;
    uint32_t p = 0;
    enum arc_pl_export alloc = in->pl->mod.m->exports[PLX_ON_MEMORY_ALLOCATE]
                                   ? PLX_ON_MEMORY_ALLOCATE : PLX_MALLOC;
    arc_pl__call(in, alloc, &p, 1, (uint32_t)len, 0, 0);
    uint8_t *dst = arc_pl__gmem(in, p, (uint32_t)len);
    if (!dst || (!p && len))
        return WR_INVALID_MEMORY;
    if (len)
        memcpy(dst, data, len);
    arc_pl__put_u32(in, ret_ptr, p);
    arc_pl__put_u32(in, ret_size, (uint32_t)len);
    return WR_OK;
}

static struct arc_pl_run *run_of(struct arc_pl_inst *in)
{
    return in->cur ? in->cur->run : NULL;
}

/* ------------------------------------------------------------ header maps */

/* RFC 9110's separators: not in a token (tchar). */
static bool separator(uint8_t c)
{
    switch (c) {
    case '"': case '(': case ')': case ',': case '/': case ';': case '<': case '=':
    case '>': case '?': case '@': case '[': case '\\': case ']': case '{': case '}':
        return true;
    default:
        return false;
    }
}

static bool name_ok(const uint8_t *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c <= ' ' || c >= 0x7f || separator(c))
            if (!(i == 0 && c == ':'))
                return false;
    }
    return true;
}

static bool value_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return false;
    return true;
}

static bool name_eq(struct arc_str a, const void *b, size_t n)
{
    return arc_str_ieq(a, b, n);
}

const struct arc_str *arc_pl_hmap_get(const struct arc_pl_hmap *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n; i++)
        if (name_eq(m->v[i].name, name, len))
            return &m->v[i].value;
    return NULL;
}

static struct arc_str arena_str(struct arc_arena *a, const void *p, size_t n, bool lower, bool *ok)
{
    if (n == 0)
        return (struct arc_str){ "", 0 };
    char *d = arc_arena_dup(a, p, n);
    if (!d) {
        *ok = false;
        return (struct arc_str){ "", 0 };
    }
    if (lower)
        for (size_t i = 0; i < n; i++)
            if (d[i] >= 'A' && d[i] <= 'Z')
                d[i] = (char)(d[i] + 32);
    return (struct arc_str){ d, n };
}

static bool hmap_grow(struct arc_pl_hmap *m)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct arc_pl_field *v = arc_arena_alloc(m->arena, cap * sizeof(*v));
        if (!v)
            return false;
        if (m->n)
            memcpy(v, m->v, m->n * sizeof(*v));
        m->v = v;
        m->cap = cap;
    }
    return true;
}

bool arc_pl_hmap_view(struct arc_pl_hmap *m, struct arc_str name, struct arc_str value)
{
    if (!hmap_grow(m))
        return false;
    bool ok = true;
    for (size_t i = 0; i < name.len; i++)
        if (name.p[i] >= 'A' && name.p[i] <= 'Z') {
            name = arena_str(m->arena, name.p, name.len, true, &ok);
            break;
        }
    m->v[m->n] = (struct arc_pl_field){ name, value };
    if (ok)
        m->n++;
    return ok;
}

bool arc_pl_hmap_add(struct arc_pl_hmap *m, struct arc_str name, struct arc_str value)
{
    if (!hmap_grow(m))
        return false;
    bool ok = true;
    m->v[m->n].name = arena_str(m->arena, name.p, name.len, true, &ok);
    m->v[m->n].value = arena_str(m->arena, value.p, value.len, false, &ok);
    if (ok)
        m->n++;
    return ok;
}

static void hmap_remove(struct arc_pl_hmap *m, const void *name, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        if (!name_eq(m->v[i].name, name, n))
            m->v[k++] = m->v[i];
    if (k != m->n)
        m->changed = true;
    m->n = k;
}

/* Filters cannot grow a head without bound (the budget alone would let a
 * loop of host calls add megabytes). */
static bool room(struct arc_pl_hmap *m, size_t fields, size_t bytes)
{
    if (m->n + fields > ARC_PL_MAP_MAX_FIELDS || m->added + bytes > ARC_PL_MAP_MAX_BYTES)
        return false;
    m->added += bytes;
    return true;
}

static struct arc_pl_hmap *map_of(struct arc_pl_inst *in, uint32_t type)
{
    if (type == MAP_CALL_RESPONSE_HEADERS || type == MAP_CALL_RESPONSE_TRAILERS) {
        const struct arc_pl_call_resp *cr = in->call_resp;   /* (read-only: never r->map) */
        if (!cr)
            return NULL;
        return (struct arc_pl_hmap *)(type == MAP_CALL_RESPONSE_HEADERS ? cr->hdrs
                                                                         : cr->trailers);
    }
    struct arc_pl_run *r = run_of(in);
    if (!r)
        return NULL;
    if (r->map && type <= MAP_RESPONSE_TRAILERS && (int)type == r->map_type)
        return r->map;                  /* the stage's own map (headers or trailers) */
    if (type == MAP_REQUEST_HEADERS && r->req_map)
        return r->req_map;              /* read at later stages */
    int d = type == MAP_REQUEST_TRAILERS ? 0 : type == MAP_RESPONSE_TRAILERS ? 1 : -1;
    if (d >= 0 && r->body && r->body_type == d && r->body_eos[d]) {
        /* The body's last call: trailers may be added to a message that
         * has none yet (they go out after the body). */
        if (!r->tmap[d]) {
            r->tmap[d] = arc_arena_alloc(r->arena, sizeof(*r->tmap[d]));
            if (!r->tmap[d])
                return NULL;
            *r->tmap[d] = (struct arc_pl_hmap){ .arena = r->arena };
        }
        return r->tmap[d];
    }
    return NULL;
}

/* The maps a filter may change now: the stage's own, or the trailers it
 * may add during its body's last call. */
static bool map_writable(const struct arc_pl_run *r, const struct arc_pl_hmap *m)
{
    return m == r->map || (r->body && r->body_eos[r->body_type] && m == r->tmap[r->body_type]);
}

static size_t pairs_size(const struct arc_pl_hmap *m)
{
    size_t n = 4;
    for (size_t i = 0; i < m->n; i++)
        n += 8 + m->v[i].name.len + 1 + m->v[i].value.len + 1;
    return n;
}

/* ------------------------------------------------------------ host functions */

static __thread uint64_t t_log_second, t_log_lines;

static uint32_t h_log(void *e, uint32_t level, uint32_t p, uint32_t n)
{
    struct arc_pl_inst *in = e;
    const uint8_t *m = arc_pl__gmem(in, p, n);
    if (!m)
        return WR_INVALID_MEMORY;
    /* warn and above reach stderr, at most 20 lines a second per thread. */
    if (level < 3)
        return WR_OK;
    uint64_t sec = arc_pl__now_ns() / 1000000000ull;
    if (sec != t_log_second) {
        t_log_second = sec;
        t_log_lines = 0;
    }
    if (t_log_lines++ < 20)
        arc_log(ARC_LOG_INFO, "plugin '%s': %.*s", in->pl->name, (int)ARC_MIN(n, 512u), m);
    return WR_OK;
}

static uint32_t h_get_log_level(void *e, uint32_t ret)
{
    return arc_pl__put_u32(e, ret, 3) ? WR_OK : WR_INVALID_MEMORY;
}

static uint32_t h_time(void *e, uint32_t ret)
{
    struct arc_pl_inst *in = e;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint8_t *p = arc_pl__gmem(in, ret, 8);
    if (!p)
        return WR_INVALID_MEMORY;
    memcpy(p, &ns, 8);
    return WR_OK;
}

static bool path_is(const uint8_t *p, size_t n, const char *want, size_t wn)
{
    return n == wn && memcmp(p, want, n) == 0;
}
#define PATH_IS(lit) path_is(path, n, lit, sizeof(lit) - 1)

static uint32_t h_get_property(void *e, uint32_t pp, uint32_t n, uint32_t ret_ptr, uint32_t ret_size)
{
    struct arc_pl_inst *in = e;
    const uint8_t *path = arc_pl__gmem(in, pp, n);
    if (!path)
        return WR_INVALID_MEMORY;
    /* Trailing NUL separators are allowed. */
    while (n && path[n - 1] == '\0')
        n--;
    const struct arc_pl_plugin *pl = in->pl;
    if (PATH_IS("plugin_root_id"))
        return arc_pl__ret_bytes(in, pl->root_id, strlen(pl->root_id), ret_ptr, ret_size);
    if (PATH_IS("plugin_name"))
        return arc_pl__ret_bytes(in, pl->name, strlen(pl->name), ret_ptr, ret_size);
    struct arc_pl_run *r = run_of(in);
    const struct arc_pl_props *pr = r ? r->props : NULL;
    if (!pr)
        return WR_NOT_FOUND;
    const struct arc_str *s = NULL;
    if (PATH_IS("request\0path"))
        s = &pr->path;
    else if (PATH_IS("request\0url_path"))
        s = &pr->url_path;
    else if (PATH_IS("request\0method"))
        s = &pr->method;
    else if (PATH_IS("request\0host"))
        s = &pr->authority;
    else if (PATH_IS("request\0scheme"))
        s = &pr->scheme;
    else if (PATH_IS("request\0protocol"))
        s = &pr->protocol;
    else if (PATH_IS("route_name"))
        s = &pr->route_name;
    if (s)
        return arc_pl__ret_bytes(in, s->p, s->len, ret_ptr, ret_size);
    if (PATH_IS("source\0address") || PATH_IS("source\0port")) {
        char ip[INET6_ADDRSTRLEN] = "", buf[INET6_ADDRSTRLEN + 10];
        uint64_t port = 0;              /* integers are 8 bytes little-endian, as in Envoy */
        const struct sockaddr *sa = pr->source;
        if (sa && sa->sa_family == AF_INET) {
            const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
            inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
            port = ntohs(a4->sin_port);
        } else if (sa && sa->sa_family == AF_INET6) {
            const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
            inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
            port = ntohs(a6->sin6_port);
        } else {
            return WR_NOT_FOUND;
        }
        if (PATH_IS("source\0port"))
            return arc_pl__ret_bytes(in, &port, 8, ret_ptr, ret_size);
        int bl = snprintf(buf, sizeof(buf), sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
                         (unsigned)port);
        return arc_pl__ret_bytes(in, buf, (size_t)bl, ret_ptr, ret_size);
    }
    if (n > 16 && memcmp(path, "request\0headers\0", 16) == 0 && r->req_map) {
        const struct arc_str *v = arc_pl_hmap_get(r->req_map, (const char *)path + 16, n - 16);
        return v ? arc_pl__ret_bytes(in, v->p, v->len, ret_ptr, ret_size) : WR_NOT_FOUND;
    }
    return WR_NOT_FOUND;
}

static uint32_t h_get_map_value(void *e, uint32_t type, uint32_t kp, uint32_t kn,
                                uint32_t ret_ptr, uint32_t ret_size)
{
    struct arc_pl_inst *in = e;
    const uint8_t *k = arc_pl__gmem(in, kp, kn);
    if (!k)
        return WR_INVALID_MEMORY;
    struct arc_pl_hmap *m = map_of(in, type);
    if (!m)
        return WR_BAD_ARGUMENT;
    const struct arc_str *v = arc_pl_hmap_get(m, (const char *)k, kn);
    if (!v)
        return WR_NOT_FOUND;
    return arc_pl__ret_bytes(in, v->p, v->len, ret_ptr, ret_size);
}

static uint32_t map_edit(void *e, uint32_t type, uint32_t kp, uint32_t kn, uint32_t vp,
                         uint32_t vn, bool replace)
{
    struct arc_pl_inst *in = e;
    const uint8_t *k = arc_pl__gmem(in, kp, kn), *v = arc_pl__gmem(in, vp, vn);
    if (!k || !v)
        return WR_INVALID_MEMORY;
    struct arc_pl_hmap *m = map_of(in, type);
    struct arc_pl_run *r = run_of(in);
    if (!m || !r || !map_writable(r, m) || !name_ok(k, kn) || !value_ok(v, vn))
        return WR_BAD_ARGUMENT;
    struct arc_str val = { (const char *)v, vn };
    if (k[0] == ':') {                  /* pseudo-headers: replaced, never added */
        for (size_t i = 0; i < m->n; i++)
            if (name_eq(m->v[i].name, k, kn)) {
                if (!room(m, 0, vn))
                    return WR_BAD_ARGUMENT;
                bool ok = true;
                m->v[i].value = arena_str(m->arena, v, vn, false, &ok);
                m->changed = true;
                return ok ? WR_OK : WR_INTERNAL;
            }
        return WR_BAD_ARGUMENT;
    }
    if (!room(m, 1, (size_t)kn + vn))
        return WR_BAD_ARGUMENT;
    if (replace)
        hmap_remove(m, k, kn);
    m->changed = true;
    return arc_pl_hmap_add(m, (struct arc_str){ (const char *)k, kn }, val) ? WR_OK : WR_INTERNAL;
}

static uint32_t h_add_map_value(void *e, uint32_t type, uint32_t kp, uint32_t kn, uint32_t vp,
                                uint32_t vn)
{
    return map_edit(e, type, kp, kn, vp, vn, false);
}

static uint32_t h_replace_map_value(void *e, uint32_t type, uint32_t kp, uint32_t kn,
                                    uint32_t vp, uint32_t vn)
{
    return map_edit(e, type, kp, kn, vp, vn, true);
}

static uint32_t h_remove_map_value(void *e, uint32_t type, uint32_t kp, uint32_t kn)
{
    struct arc_pl_inst *in = e;
    const uint8_t *k = arc_pl__gmem(in, kp, kn);
    if (!k)
        return WR_INVALID_MEMORY;
    struct arc_pl_hmap *m = map_of(in, type);
    if (!m || !run_of(in) || !map_writable(run_of(in), m) || (kn && k[0] == ':'))
        return WR_BAD_ARGUMENT;
    hmap_remove(m, k, kn);              /* absent: Ok, as Envoy answers */
    return WR_OK;
}

static uint32_t h_get_map_pairs(void *e, uint32_t type, uint32_t ret_ptr, uint32_t ret_size)
{
    struct arc_pl_inst *in = e;
    struct arc_pl_hmap *m = map_of(in, type);
    if (!m || !run_of(in))
        return WR_BAD_ARGUMENT;
    size_t len = pairs_size(m);
    uint8_t *buf = arc_arena_alloc(run_of(in)->arena, len);
    if (!buf)
        return WR_INTERNAL;
    uint32_t cnt = (uint32_t)m->n;
    memcpy(buf, &cnt, 4);
    size_t off = 4 + 8 * m->n;
    for (size_t i = 0; i < m->n; i++) {
        uint32_t kl = (uint32_t)m->v[i].name.len, vl = (uint32_t)m->v[i].value.len;
        memcpy(buf + 4 + 8 * i, &kl, 4);
        memcpy(buf + 8 + 8 * i, &vl, 4);
        memcpy(buf + off, m->v[i].name.p, kl);
        buf[off + kl] = 0;
        off += kl + 1;
        memcpy(buf + off, m->v[i].value.p, vl);
        buf[off + vl] = 0;
        off += vl + 1;
    }
    return arc_pl__ret_bytes(in, buf, len, ret_ptr, ret_size);
}

/* Parses the ABI's serialised pairs into `out` (copies into the arena). */
uint32_t arc_pl__parse_pairs(struct arc_pl_inst *in, uint32_t p, uint32_t n, struct arc_pl_hmap *out,
                             bool allow_pseudo)
{
    const uint8_t *b = arc_pl__gmem(in, p, n);
    if (!b)
        return WR_INVALID_MEMORY;
    if (n == 0)
        return WR_OK;
    if (n < 4)
        return WR_BAD_ARGUMENT;
    uint32_t cnt;
    memcpy(&cnt, b, 4);
    if (cnt > (n - 4) / 8)
        return WR_BAD_ARGUMENT;
    size_t off = 4 + 8 * (size_t)cnt;
    for (uint32_t i = 0; i < cnt; i++) {
        uint32_t kl, vl;
        memcpy(&kl, b + 4 + 8 * i, 4);
        memcpy(&vl, b + 8 + 8 * i, 4);
        if ((uint64_t)off + kl + 1 + vl + 1 > n)
            return WR_BAD_ARGUMENT;
        const uint8_t *k = b + off, *v = b + off + kl + 1;
        off += (size_t)kl + 1 + vl + 1;
        if (!name_ok(k, kl) || !value_ok(v, vl) || (k[0] == ':' && !allow_pseudo) ||
            !room(out, 1, (size_t)kl + vl))
            return WR_BAD_ARGUMENT;
        if (!arc_pl_hmap_add(out, (struct arc_str){ (const char *)k, kl },
                             (struct arc_str){ (const char *)v, vl }))
            return WR_INTERNAL;
    }
    return WR_OK;
}

static uint32_t h_set_map_pairs(void *e, uint32_t type, uint32_t p, uint32_t n)
{
    struct arc_pl_inst *in = e;
    struct arc_pl_hmap *m = map_of(in, type);
    if (!m || !run_of(in) || !map_writable(run_of(in), m))
        return WR_BAD_ARGUMENT;
    struct arc_pl_hmap nm = { .arena = m->arena, .added = m->added };
    uint32_t rc = arc_pl__parse_pairs(in, p, n, &nm, true);
    if (rc != WR_OK)
        return rc;
    /* Pseudo-headers the new set leaves out keep their values. */
    struct arc_pl_hmap keep = { .arena = m->arena };
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].name.len && m->v[i].name.p[0] == ':' &&
            !arc_pl_hmap_get(&nm, m->v[i].name.p, m->v[i].name.len) &&
            !arc_pl_hmap_view(&keep, m->v[i].name, m->v[i].value))
            return WR_INTERNAL;
    for (size_t i = 0; i < nm.n; i++)
        if (!arc_pl_hmap_view(&keep, nm.v[i].name, nm.v[i].value))
            return WR_INTERNAL;
    m->v = keep.v;
    m->n = keep.n;
    m->cap = keep.cap;
    m->added = nm.added;
    m->changed = true;
    return WR_OK;
}

static uint32_t h_get_map_size(void *e, uint32_t type, uint32_t ret)
{
    struct arc_pl_inst *in = e;
    struct arc_pl_hmap *m = map_of(in, type);
    if (!m)
        return WR_BAD_ARGUMENT;
    return arc_pl__put_u32(in, ret, (uint32_t)pairs_size(m)) ? WR_OK : WR_INVALID_MEMORY;
}

/* The body offered to the callback running (types 0 and 1, during
 * proxy_on_request_body / proxy_on_response_body), or the body a filter
 * holds while it pauses its end (for a call on that filter's context,
 * e.g. from proxy_on_http_call_response). */
static struct arc_pl_buf *body_of(struct arc_pl_inst *in, uint32_t type)
{
    struct arc_pl_run *r = run_of(in);
    if (!r)
        return NULL;
    if (!r->body && r->paused && r->pause_stage == ARC_PL_STAGE_BODY &&
        (int)type == r->pause_resp && in->cur == &r->ctx[r->next])
        return &r->ctx[r->next].held[type];     /* (the body its filter holds, paused) */
    if (!r->body || (int)type != r->body_type)
        return NULL;
    return r->body;
}

static uint32_t h_get_buffer_bytes(void *e, uint32_t type, uint32_t start, uint32_t max,
                                   uint32_t ret_ptr, uint32_t ret_size)
{
    struct arc_pl_inst *in = e;
    const char *data = "";
    size_t len = 0;
    if (type == BUF_PLUGIN_CONFIGURATION) {
        data = in->pl->roots[in->cfg_root].p;
        len = in->pl->roots[in->cfg_root].len;
    } else if (type == BUF_CALL_RESPONSE_BODY && in->call_resp) {
        data = in->call_resp->body.p;
        len = in->call_resp->body.len;
    } else if (type == BUF_REQUEST_BODY || type == BUF_RESPONSE_BODY) {
        struct arc_pl_buf *b = body_of(in, type);
        if (!b)
            return WR_NOT_FOUND;        /* (no body callback running: as Envoy) */
        data = b->p ? b->p : "";
        len = b->len;
    } else if (type != BUF_VM_CONFIGURATION) {
        return WR_UNIMPLEMENTED;
    }
    if ((uint64_t)start + max > UINT32_MAX)
        return WR_BAD_ARGUMENT;         /* (start + length overflows, as Envoy checks) */
    size_t s = ARC_MIN((size_t)start, len);
    size_t l = ARC_MIN((size_t)max, len - s);
    /* (the guest's allocator runs inside ret_bytes; the body buffer is the
     * host's and does not move with the guest's memory) */
    return arc_pl__ret_bytes(in, data + s, l, ret_ptr, ret_size);
}

static uint32_t h_get_buffer_status(void *e, uint32_t type, uint32_t ret_len, uint32_t ret_flags)
{
    struct arc_pl_inst *in = e;
    size_t len;
    if (type == BUF_PLUGIN_CONFIGURATION)
        len = in->pl->roots[in->cfg_root].len;
    else if (type == BUF_CALL_RESPONSE_BODY && in->call_resp)
        len = in->call_resp->body.len;
    else if (type == BUF_VM_CONFIGURATION)
        len = 0;
    else if (type == BUF_REQUEST_BODY || type == BUF_RESPONSE_BODY) {
        struct arc_pl_buf *b = body_of(in, type);
        if (!b)
            return WR_NOT_FOUND;
        len = b->len;
    } else
        return WR_UNIMPLEMENTED;
    return arc_pl__put_u32(in, ret_len, (uint32_t)len) && arc_pl__put_u32(in, ret_flags, 1) ? WR_OK
                                                                          : WR_INVALID_MEMORY;
}

bool arc_pl_buf_reserve(struct arc_pl_buf *b, size_t need)
{
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool arc_pl_buf_add(struct arc_pl_buf *b, const void *p, size_t len)
{
    if (!arc_pl_buf_reserve(b, b->len + len))
        return false;
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return true;
}

/* proxy_set_buffer_bytes as Envoy does it: start 0 replaces the first
 * `length` bytes (all of them when length >= size) with the data; start at
 * or past the end appends; anything else is BadArgument. */
static uint32_t h_set_buffer_bytes(void *e, uint32_t type, uint32_t start, uint32_t length,
                                   uint32_t dp, uint32_t dn)
{
    struct arc_pl_inst *in = e;
    const uint8_t *d = arc_pl__gmem(in, dp, dn);
    if (!d)
        return WR_INVALID_MEMORY;
    if (type != BUF_REQUEST_BODY && type != BUF_RESPONSE_BODY)
        return type <= BUF_PLUGIN_CONFIGURATION ? WR_BAD_ARGUMENT : WR_UNIMPLEMENTED;
    struct arc_pl_buf *b = body_of(in, type);
    if (!b)
        return WR_NOT_FOUND;
    size_t drop;
    if (start == 0)
        drop = ARC_MIN((size_t)length, b->len);
    else if (start >= b->len)
        drop = 0;
    else
        return WR_BAD_ARGUMENT;
    size_t nlen = b->len - drop + dn;
    if (nlen > in->pl->max_body)
        return WR_BAD_ARGUMENT;         /* (a filter cannot grow a body past its limit) */
    if (!arc_pl_buf_reserve(b, nlen))
        return WR_INTERNAL;
    if (start == 0) {
        memmove(b->p + dn, b->p + drop, b->len - drop);
        if (dn)
            memcpy(b->p, d, dn);
    } else if (dn) {
        memcpy(b->p + b->len, d, dn);
    }
    b->len = nlen;
    return WR_OK;
}

static uint32_t h_send_local_response(void *e, uint32_t status, uint32_t dp, uint32_t dn,
                                      uint32_t bp, uint32_t bn, uint32_t hp, uint32_t hn,
                                      uint32_t grpc)
{
    (void)grpc;
    struct arc_pl_inst *in = e;
    struct arc_pl_run *r = run_of(in);
    const uint8_t *body = arc_pl__gmem(in, bp, bn);
    if (!arc_pl__gmem(in, dp, dn) || !body || !arc_pl__gmem(in, hp, hn))
        return WR_INVALID_MEMORY;
    if (!r || (!r->map && !r->body && !r->paused) || status < 200 || status > 599 ||
        bn > ARC_PL_LOCAL_BODY_MAX)
        return WR_BAD_ARGUMENT;         /* (no stage running or paused for that context) */
    struct arc_pl_hmap h = { .arena = r->arena };
    uint32_t rc = arc_pl__parse_pairs(in, hp, hn, &h, false);
    if (rc != WR_OK)
        return rc;
    bool ok = true;
    r->local = (struct arc_pl_local){
        .status = (int)status,
        .body = arena_str(r->arena, body, bn, false, &ok),
        .hdrs = h.v, .n_hdrs = h.n,
    };
    if (!ok)
        return WR_INTERNAL;
    r->has_local = true;
    if (r->paused && r->notify)
        r->notify(r->owner);            /* answered while paused: it goes on (to answer) */
    return WR_OK;
}

/* ------------------------------------------------------------ ticks */

static void tick_arm(struct arc_pl_inst *in)
{
    struct arc_tw *tw = in->slot->tw;
    if (!tw)
        return;                         /* (configuring on the control thread: the worker
                                           arms it in arc_plugin_ticks_start) */
    if (in->tick_ms)
        arc_tw_schedule(tw, &in->tick, arc_pl__now_ns() / 1000000u + in->tick_ms);
    else
        arc_tw_cancel(tw, &in->tick);
}

/* The root context calling (configure, or the root of the HTTP context)
 * gets proxy_on_tick every `ms` (0 stops). */
static uint32_t h_set_tick_period(void *e, uint32_t ms)
{
    struct arc_pl_inst *in = e;
    in->tick_ms = ms;
    in->tick_root = in->cur ? in->cur->root + 1 : in->root_now ? in->root_now : in->cfg_root + 1;
    tick_arm(in);
    return WR_OK;
}

void arc_pl__on_tick(struct arc_timer *t, uint64_t now_ms)
{
    struct arc_pl_inst *in = arc_container_of(t, struct arc_pl_inst, tick);
    struct arc_pl_wslot *s = in->slot;
    if (!s->tw || !in->tick_ms)
        return;
    if (in->dead) {
        /* Rebuilt (with the same back-off as for exchanges); its
         * configure asks for ticks again if it wants them. */
        if (now_ms >= s->retry_ms) {
            if (arc_pl__inst_rebuild(in) < 0) {
                s->backoff_ms = s->backoff_ms ? ARC_MIN(s->backoff_ms * 2, 10000u) : 100;
                s->retry_ms = now_ms + s->backoff_ms;
            } else {
                s->backoff_ms = 0;
            }
        }
        if (!in->dead)
            return;                     /* (armed again by its configure, or not) */
    } else {
        uint32_t rv;
        in->cur = NULL;
        in->root_now = in->tick_root;
        int code = arc_pl__call(in, PLX_ON_TICK, &rv, 1, in->tick_root, 0, 0);
        in->root_now = 0;
        if (code)
            fprintf(stderr, "arc: plugin '%s' failed in proxy_on_tick: %s\n", in->pl->name,
                    arc_pl__trap_text(code));
        if (s->queue_ready)
            arc_pl__queues_deliver(s);
    }
    if (in->tick_ms && !arc_timer_pending(t))
        arc_tw_schedule(s->tw, t, now_ms + in->tick_ms);
}

void arc_plugin_ticks_start(struct arc_pl_set *set, unsigned worker, struct arc_tw *tw,
                            uint64_t now_ms, arc_pl_dispatch_fn root_call, void *owner)
{
    for (size_t i = 0; set && i < set->n; i++) {
        struct arc_pl_plugin *pl = &set->pl[i];
        if (!pl->w || worker >= pl->n_workers)
            continue;
        struct arc_pl_wslot *s = &pl->w[worker];
        s->tw = tw;
        s->root_call = root_call;
        s->root_owner = owner;
        for (uint32_t k = 0; k < pl->pool; k++)
            if (s->inst[k].tick_ms)
                arc_tw_schedule(tw, &s->inst[k].tick, now_ms + s->inst[k].tick_ms);
    }
}

void arc_plugin_ticks_stop(struct arc_pl_set *set, unsigned worker)
{
    for (size_t i = 0; set && i < set->n; i++) {
        struct arc_pl_plugin *pl = &set->pl[i];
        if (!pl->w || worker >= pl->n_workers || !pl->w[worker].tw)
            continue;
        struct arc_pl_wslot *s = &pl->w[worker];
        for (uint32_t k = 0; k < pl->pool; k++)
            arc_tw_cancel(s->tw, &s->inst[k].tick);
        s->tw = NULL;
        s->root_call = NULL;            /* (answers still on their way are dropped) */
        s->root_owner = NULL;
    }
}

/* ------------------------------------------------------------ contexts, pause */

static void ctx_link(struct arc_pl_inst *in, struct arc_pl_ctx *c)
{
    c->live_prev = NULL;
    c->live_next = in->live;
    if (in->live)
        in->live->live_prev = c;
    in->live = c;
    c->linked = true;
}

static void ctx_unlink(struct arc_pl_ctx *c)
{
    struct arc_pl_inst *in = c->inst;
    /* (a rebuild emptied the list of an older generation) */
    if (c->linked && in && in->gen == c->gen) {
        if (c->live_prev)
            c->live_prev->live_next = c->live_next;
        else if (in->live == c)
            in->live = c->live_next;
        if (c->live_next)
            c->live_next->live_prev = c->live_prev;
    }
    c->linked = false;
    c->live_next = c->live_prev = NULL;
}

/* The calls that follow act on context `id`: another exchange's HTTP
 * context on this instance (e.g. a request this filter paused), or a root
 * context (no exchange). */
static uint32_t h_set_effective_context(void *e, uint32_t id)
{
    struct arc_pl_inst *in = e;
    for (struct arc_pl_ctx *c = in->live; c; c = c->live_next)
        if (c->id == id) {
            in->cur = c;
            return WR_OK;
        }
    if (id >= 1 && id <= in->pl->n_roots) {
        in->cur = NULL;
        in->root_now = id;
        return WR_OK;
    }
    return WR_BAD_ARGUMENT;
}

/* proxy_continue_stream(request or response): the paused stage goes on
 * (after the guest call that asked returns: the exchange is told to
 * wake). */
static uint32_t continue_stage(struct arc_pl_inst *in, bool resp)
{
    struct arc_pl_ctx *c = in->cur;
    if (!c)
        return WR_BAD_ARGUMENT;
    struct arc_pl_run *r = c->run;
    if (r->paused && r->pause_resp != resp)
        return WR_OK;                   /* (the other direction is not paused) */
    /* (in its own callback: the direction of the stage running) */
    int dir = r->body ? r->body_type
              : r->map_type == MAP_RESPONSE_HEADERS || r->map_type == MAP_RESPONSE_TRAILERS;
    if (!r->paused && (int)resp != dir)
        return WR_OK;                   /* (not in that direction's stage) */
    if (r->paused) {
        if (&r->ctx[r->next] != c)
            return WR_OK;               /* another filter of the run holds it */
        if (!r->resume_req) {
            r->resume_req = true;
            if (r->notify)
                r->notify(r->owner);
        }
        return WR_OK;
    }
    r->resume_req = true;               /* in its own callback: a Pause it returns
                                           is a Continue */
    return WR_OK;
}

static uint32_t h_continue_stream(void *e, uint32_t type)
{
    if (type <= 1)
        return continue_stage(e, type == 1);
    return WR_BAD_ARGUMENT;
}

static uint32_t h_continue_request(void *e)
{
    return continue_stage(e, false);
}

static uint32_t h_continue_response(void *e)
{
    return continue_stage(e, true);
}

static void h_proc_exit(void *e, uint32_t code)
{
    (void)e;
    (void)code;
    /* The guest gave up (the AssemblyScript SDK's abort). */
    arc_pl__exit_trap();
}

const struct arc_pl_sig arc_pl__imports[ARC_PL_IMPORTS] = {
    { "proxy_log", "iii>i" },
    { "proxy_get_log_level", "i>i" },
    { "proxy_get_current_time_nanoseconds", "i>i" },
    { "proxy_get_property", "iiii>i" },
    { "proxy_get_header_map_value", "iiiii>i" },
    { "proxy_add_header_map_value", "iiiii>i" },
    { "proxy_replace_header_map_value", "iiiii>i" },
    { "proxy_remove_header_map_value", "iii>i" },
    { "proxy_get_header_map_pairs", "iii>i" },
    { "proxy_set_header_map_pairs", "iii>i" },
    { "proxy_get_header_map_size", "ii>i" },
    { "proxy_get_buffer_bytes", "iiiii>i" },
    { "proxy_get_buffer_status", "iii>i" },
    { "proxy_send_local_response", "iiiiiiii>i" },
    { "proxy_set_effective_context", "i>i" },
    { "proc_exit", "i>" },
    { "proxy_get_shared_data", "iiiii>i" },
    { "proxy_set_shared_data", "iiiii>i" },
    { "proxy_define_metric", "iiii>i" },
    { "proxy_increment_metric", "iI>i" },
    { "proxy_record_metric", "iI>i" },
    { "proxy_get_metric", "ii>i" },
    { "proxy_continue_stream", "i>i" },
    { "proxy_continue_request", ">i" },
    { "proxy_continue_response", ">i" },
    { "proxy_register_shared_queue", "iii>i" },
    { "proxy_resolve_shared_queue", "iiiii>i" },
    { "proxy_enqueue_shared_queue", "iii>i" },
    { "proxy_dequeue_shared_queue", "iii>i" },
    { "proxy_http_call", "iiiiiiiiii>i" },
    { "proxy_set_tick_period_milliseconds", "i>i" },
    { "proxy_set_buffer_bytes", "iiiii>i" },
};

const arc_w2c_fn arc_pl__import_fns[ARC_PL_IMPORTS] = {
    (arc_w2c_fn)h_log, (arc_w2c_fn)h_get_log_level, (arc_w2c_fn)h_time,
    (arc_w2c_fn)h_get_property, (arc_w2c_fn)h_get_map_value, (arc_w2c_fn)h_add_map_value,
    (arc_w2c_fn)h_replace_map_value, (arc_w2c_fn)h_remove_map_value,
    (arc_w2c_fn)h_get_map_pairs, (arc_w2c_fn)h_set_map_pairs, (arc_w2c_fn)h_get_map_size,
    (arc_w2c_fn)h_get_buffer_bytes, (arc_w2c_fn)h_get_buffer_status,
    (arc_w2c_fn)h_send_local_response, (arc_w2c_fn)h_set_effective_context,
    (arc_w2c_fn)h_proc_exit,
    (arc_w2c_fn)arc_pl__h_get_shared_data, (arc_w2c_fn)arc_pl__h_set_shared_data,
    (arc_w2c_fn)arc_pl__h_define_metric, (arc_w2c_fn)arc_pl__h_increment_metric,
    (arc_w2c_fn)arc_pl__h_record_metric, (arc_w2c_fn)arc_pl__h_get_metric,
    (arc_w2c_fn)h_continue_stream, (arc_w2c_fn)h_continue_request,
    (arc_w2c_fn)h_continue_response,
    (arc_w2c_fn)arc_pl__h_register_queue, (arc_w2c_fn)arc_pl__h_resolve_queue,
    (arc_w2c_fn)arc_pl__h_enqueue, (arc_w2c_fn)arc_pl__h_dequeue,
    (arc_w2c_fn)arc_pl__h_http_call, (arc_w2c_fn)h_set_tick_period, (arc_w2c_fn)h_set_buffer_bytes,
};

/* ------------------------------------------------------------ runs */

struct arc_pl_run *arc_pl_run_new(struct arc_pl_set *set, unsigned worker,
                                  const uint32_t *plugins, const uint32_t *roots, size_t n,
                                  struct arc_arena *arena, const struct arc_pl_props *props)
{
    struct arc_pl_run *r = arc_arena_alloc(arena, sizeof(*r));
    struct arc_pl_ctx *c = arc_arena_alloc(arena, (n ? n : 1) * sizeof(*c));
    if (!r || !c)
        return NULL;
    *r = (struct arc_pl_run){ .set = set, .worker = worker, .n = n, .ctx = c,
                              .props = props, .arena = arena };
    for (size_t i = 0; i < n; i++) {
        c[i] = (struct arc_pl_ctx){ .plugin = plugins[i], .root = roots ? roots[i] : 0, .run = r };
        r->body_mask |= set->pl[plugins[i]].body_mask;
    }
    return r;
}

/* Applies the plugin's failure policy after a failed call on ctx. */
static enum arc_pl_verdict failed(struct arc_pl_run *r, struct arc_pl_ctx *c, int code)
{
    const struct arc_pl_plugin *pl = &r->set->pl[c->plugin];
    r->fail = code == ARC_TRAP_BUDGET ? ARC_PL_FAIL_BUDGET
              : code ? ARC_PL_FAIL_TRAP : ARC_PL_FAIL_UNAVAILABLE;
    if (code) {
        static __thread uint64_t last_sec;
        uint64_t sec = arc_pl__now_ns() / 1000000000ull;
        if (sec != last_sec) {          /* one line a second per worker at most */
            last_sec = sec;
            arc_log(ARC_LOG_ERROR, "plugin '%s' failed: %s (%s)", pl->name,
                    arc_pl__trap_text(code), pl->fail_open ? "fail_open" : "fail_closed");
        }
    }
    ctx_unlink(c);
    c->inst = NULL;
    c->dead = true;
    r->has_local = false;
    return pl->fail_open ? ARC_PL_CONTINUE : ARC_PL_FAIL;
}

static bool ctx_live(const struct arc_pl_ctx *c)
{
    return c->inst && !c->inst->dead && c->inst->gen == c->gen;
}

/* Makes ctx c ready for a callback: its context created (again, on a
 * rebuilt instance) and its instance alive. 1: call it; 0: skip it (out
 * of the run, failed open); -1: the run fails (fail_closed). */
static inline __attribute__((always_inline)) int ctx_ready(struct arc_pl_run *r,
                                                          struct arc_pl_ctx *c, uint64_t now_ms)
{
    if (c->dead)
        return 0;                       /* failed open earlier: the filter is out */
    if (c->created && !ctx_live(c)) {
        c->created = false;             /* another exchange's failure discarded the
                                           instance: this one starts a new context
                                           on the rebuilt one, unaffected */
        ctx_unlink(c);
    }
    if (!c->created) {
        struct arc_pl_inst *in = arc_pl__pick(&r->set->pl[c->plugin], r->worker, now_ms);
        c->created = true;
        if (!in)
            return failed(r, c, 0) == ARC_PL_FAIL ? -1 : 0;
        c->inst = in;
        c->gen = in->gen;
        c->id = in->next_ctx++;
        if (in->next_ctx == 0)
            in->next_ctx = r->set->pl[c->plugin].n_roots + 1;
        ctx_link(in, c);
        uint32_t rv;
        in->cur = c;
        int code = arc_pl__call(in, PLX_ON_CONTEXT_CREATE, &rv, 2, c->id, c->root + 1, 0);
        in->cur = NULL;
        in->root_now = 0;          /* (a switch to a root ends with the call) */
        if (code)
            return failed(r, c, code) == ARC_PL_FAIL ? -1 : 0;
    }
    if (!ctx_live(c))
        return failed(r, c, 0) == ARC_PL_FAIL ? -1 : 0;
    return 1;
}

/* Runs the stage's callback `e` for ctx[from..n) over run->map. */
static enum arc_pl_verdict stage_from(struct arc_pl_run *r, size_t from, enum arc_pl_export e,
                                      uint64_t now_ms)
{
    struct arc_pl_hmap *map = r->map;
    for (size_t i = from; i < r->n; i++) {
        struct arc_pl_ctx *c = &r->ctx[i];
        int ready = ctx_ready(r, c, now_ms);
        if (ready < 0)
            return ARC_PL_FAIL;
        if (ready == 0)
            continue;
        uint32_t action = 0;
        struct arc_pl_inst *in = c->inst;
        in->cur = c;
        r->resume_req = false;
        int code = arc_pl__call(in, e, &action, 3, c->id, (uint32_t)map->n, r->stage_eos);
        in->cur = NULL;
        in->root_now = 0;
        if (in->slot->queue_ready)
            arc_pl__queues_deliver(in->slot);
        if (code) {
            if (failed(r, c, code) == ARC_PL_FAIL)
                return ARC_PL_FAIL;
            continue;
        }
        if (r->has_local)
            return ARC_PL_LOCAL;
        if (action == 0 || r->resume_req)
            continue;                   /* Continue (or Pause, already continued) */
        /* Pause: the exchange waits for proxy_continue_stream (or a local
         * answer) from a later call, up to pause_timeout. */
        r->paused = true;
        r->pause_resp = e == PLX_ON_RESPONSE_HEADERS;
        r->pause_stage = ARC_PL_STAGE_HEAD;
        r->next = i;
        r->pause_ms = r->set->pl[c->plugin].pause_ms;
        return ARC_PL_PAUSE;
    }
    return ARC_PL_CONTINUE;
}

enum arc_pl_verdict arc_pl_request_headers(struct arc_pl_run *r, struct arc_pl_hmap *map,
                                           bool eos, uint64_t now_ms)
{
    r->map = map;
    r->map_type = MAP_REQUEST_HEADERS;
    r->stage_eos = eos;
    r->fail = ARC_PL_FAIL_NONE;
    enum arc_pl_verdict v = stage_from(r, 0, PLX_ON_REQUEST_HEADERS, now_ms);
    if (v == ARC_PL_PAUSE)
        return v;                       /* (the map stays: the filter may still edit it) */
    r->req_map = map;
    r->map = NULL;
    return v;
}

enum arc_pl_verdict arc_pl_response_headers(struct arc_pl_run *r, struct arc_pl_hmap *map,
                                            bool eos, uint64_t now_ms)
{
    r->map = map;
    r->map_type = MAP_RESPONSE_HEADERS;
    r->stage_eos = eos;
    r->fail = ARC_PL_FAIL_NONE;
    enum arc_pl_verdict v = stage_from(r, 0, PLX_ON_RESPONSE_HEADERS, now_ms);
    if (v == ARC_PL_PAUSE)
        return v;                       /* (the map stays: the filter may still edit it) */
    r->map = NULL;
    return v;
}

/* ------------------------------------------------------------ bodies, trailers */

static void buf_swap(struct arc_pl_buf *a, struct arc_pl_buf *b)
{
    struct arc_pl_buf t = *a;
    *a = *b;
    *b = t;
}

/* Appends b's bytes to a (b is left empty). */
static bool buf_join(struct arc_pl_buf *a, struct arc_pl_buf *b)
{
    if (!a->len) {
        buf_swap(a, b);
        b->len = 0;
        return true;
    }
    if (b->len && !arc_pl_buf_add(a, b->p, b->len))
        return false;
    b->len = 0;
    return true;
}

/* Runs the body callbacks of ctx[from..n) for direction dir over
 * r->work[dir] (the bytes arriving, or a paused filter's held body). */
static enum arc_pl_verdict body_from(struct arc_pl_run *r, int dir, size_t from, bool eos,
                                     uint64_t now_ms)
{
    unsigned has = dir ? ARC_PL_HAS_RESP_BODY : ARC_PL_HAS_REQ_BODY;
    enum arc_pl_export e = dir ? PLX_ON_RESPONSE_BODY : PLX_ON_REQUEST_BODY;
    struct arc_pl_buf *w = &r->work[dir];
    for (size_t i = from; i < r->n; i++) {
        struct arc_pl_ctx *c = &r->ctx[i];
        const struct arc_pl_plugin *pl = &r->set->pl[c->plugin];
        if (!(pl->body_mask & has))
            continue;
        struct arc_pl_buf *h = &c->held[dir];
        int ready = ctx_ready(r, c, now_ms);
        if (ready < 0)
            return ARC_PL_FAIL;
        if (ready == 0) {
            /* Out of the run (failed open): what it held goes on first. */
            if (!buf_join(h, w))
                return ARC_PL_FAIL;
            buf_swap(h, w);
            continue;
        }
        /* The filter sees what it holds with this chunk appended. */
        if (h->len && h->len + w->len > pl->max_body)
            return ARC_PL_TOO_LARGE;
        if (!buf_join(h, w)) {
            r->fail = ARC_PL_FAIL_TRAP;
            return ARC_PL_FAIL;
        }
        uint32_t action = 0;
        struct arc_pl_inst *in = c->inst;
        in->cur = c;
        r->body = h;
        r->body_type = dir;
        r->resume_req = false;
        int code = arc_pl__call(in, e, &action, 3, c->id, (uint32_t)h->len, eos);
        r->body = NULL;
        in->cur = NULL;
        in->root_now = 0;
        if (in->slot->queue_ready)
            arc_pl__queues_deliver(in->slot);
        if (code) {
            if (failed(r, c, code) == ARC_PL_FAIL)
                return ARC_PL_FAIL;
            buf_swap(h, w);             /* failed open: its bytes go on unfiltered */
            continue;
        }
        if (r->has_local)
            return ARC_PL_LOCAL;
        if (action != 0 && !r->resume_req) {
            /* StopIterationAndBuffer (1), AndWatermark (2), NoBuffer (3):
             * held here and offered again with the next chunk; at the end
             * of the stream the exchange waits for proxy_continue_stream. */
            if (h->len > pl->max_body)
                return ARC_PL_TOO_LARGE;
            if (!eos) {
                w->len = 0;
                return ARC_PL_CONTINUE;
            }
            r->paused = true;
            r->pause_resp = dir == ARC_PL_DIR_RESP;
            r->pause_stage = ARC_PL_STAGE_BODY;
            r->next = i;
            r->pause_ms = pl->pause_ms;
            w->len = 0;
            return ARC_PL_PAUSE;
        }
        r->resume_req = false;
        buf_swap(h, w);                 /* Continue: on to the next filter */
    }
    return ARC_PL_CONTINUE;
}

enum arc_pl_verdict arc_pl_body(struct arc_pl_run *r, int dir, const char *p, size_t len,
                                bool eos, uint64_t now_ms, const char **out, size_t *out_len)
{
    *out = p;
    *out_len = len;
    unsigned has = dir ? ARC_PL_HAS_RESP_BODY : ARC_PL_HAS_REQ_BODY;
    if (r->body_eos[dir] || !(r->body_mask & has))
        return ARC_PL_CONTINUE;         /* (closed: bytes pass through) */
    struct arc_pl_buf *w = &r->work[dir];
    r->body_eos[dir] = eos;
    r->fail = ARC_PL_FAIL_NONE;
    w->len = 0;
    if (len) {
        if (!arc_pl_buf_reserve(w, len)) {
            r->fail = ARC_PL_FAIL_TRAP;  /* (out of memory: fails like the filter) */
            return ARC_PL_FAIL;
        }
        memcpy(w->p, p, len);
        w->len = len;
    }
    enum arc_pl_verdict v = body_from(r, dir, 0, eos, now_ms);
    arc_pl_body_out(r, dir, out, out_len);
    return v;
}

void arc_pl_body_out(struct arc_pl_run *r, int dir, const char **out, size_t *out_len)
{
    *out = r->work[dir].p ? r->work[dir].p : "";
    *out_len = r->work[dir].len;
}

/* Runs the trailer callbacks of ctx[from..n) over r->map. */
static enum arc_pl_verdict trailers_from(struct arc_pl_run *r, int dir, size_t from,
                                         uint64_t now_ms)
{
    unsigned has = dir ? ARC_PL_HAS_RESP_TRAILERS : ARC_PL_HAS_REQ_TRAILERS;
    enum arc_pl_export e = dir ? PLX_ON_RESPONSE_TRAILERS : PLX_ON_REQUEST_TRAILERS;
    for (size_t i = from; i < r->n; i++) {
        struct arc_pl_ctx *c = &r->ctx[i];
        if (!(r->set->pl[c->plugin].body_mask & has))
            continue;
        int ready = ctx_ready(r, c, now_ms);
        if (ready < 0)
            return ARC_PL_FAIL;
        if (ready == 0)
            continue;
        uint32_t action = 0;
        struct arc_pl_inst *in = c->inst;
        in->cur = c;
        r->resume_req = false;
        int code = arc_pl__call(in, e, &action, 2, c->id, (uint32_t)r->map->n, 0);
        in->cur = NULL;
        in->root_now = 0;
        if (in->slot->queue_ready)
            arc_pl__queues_deliver(in->slot);
        if (code) {
            if (failed(r, c, code) == ARC_PL_FAIL)
                return ARC_PL_FAIL;
            continue;
        }
        if (r->has_local)
            return ARC_PL_LOCAL;
        if (action != 0 && !r->resume_req) {
            /* StopIteration: the trailers (and the message's end) wait
             * for proxy_continue_stream; the map stays writable. */
            r->paused = true;
            r->pause_resp = dir == ARC_PL_DIR_RESP;
            r->pause_stage = ARC_PL_STAGE_TRAILERS;
            r->next = i;
            r->pause_ms = r->set->pl[c->plugin].pause_ms;
            return ARC_PL_PAUSE;
        }
        r->resume_req = false;
    }
    return ARC_PL_CONTINUE;
}

enum arc_pl_verdict arc_pl_trailers(struct arc_pl_run *r, int dir, struct arc_pl_hmap *map,
                                    uint64_t now_ms)
{
    unsigned has = dir ? ARC_PL_HAS_RESP_TRAILERS : ARC_PL_HAS_REQ_TRAILERS;
    if (!(r->body_mask & has) || r->map)
        return ARC_PL_CONTINUE;         /* (r->map: a request stage still paused) */
    r->map = map;
    r->map_type = dir ? MAP_RESPONSE_TRAILERS : MAP_REQUEST_TRAILERS;
    r->fail = ARC_PL_FAIL_NONE;
    enum arc_pl_verdict v = trailers_from(r, dir, 0, now_ms);
    if (v != ARC_PL_PAUSE)
        r->map = NULL;
    return v;
}

/* Resumes a paused stage from ctx[from]. */
static enum arc_pl_verdict stage_go(struct arc_pl_run *r, size_t from, uint64_t now_ms)
{
    int dir = r->pause_resp;
    switch (r->pause_stage) {
    case ARC_PL_STAGE_BODY: {
        /* The paused filter's held body goes on to the filters after it. */
        struct arc_pl_buf *h = &r->ctx[r->next].held[dir], *w = &r->work[dir];
        w->len = 0;
        buf_swap(h, w);
        return body_from(r, dir, from, true, now_ms);
    }
    case ARC_PL_STAGE_TRAILERS:
        return trailers_from(r, dir, from, now_ms);
    default:
        return stage_from(r, from, dir ? PLX_ON_RESPONSE_HEADERS : PLX_ON_REQUEST_HEADERS,
                          now_ms);
    }
}

enum arc_pl_verdict arc_pl_resume(struct arc_pl_run *r, uint64_t now_ms)
{
    if (!r->paused)
        return ARC_PL_CONTINUE;
    r->paused = false;
    struct arc_pl_ctx *c = &r->ctx[r->next];
    int stage = r->pause_stage;
    enum arc_pl_verdict v;
    if (r->pfail) {
        int code = r->pfail;
        r->pfail = 0;
        v = failed(r, c, code);
        if (v == ARC_PL_CONTINUE)
            v = stage_go(r, r->next + 1, now_ms);
    } else if (r->has_local) {
        v = ARC_PL_LOCAL;
    } else if (!r->resume_req) {
        /* pause_timeout: the plugin's failure policy; its context stays
         * (the end callbacks still come) but it sees no later stage. */
        const struct arc_pl_plugin *pl = &r->set->pl[c->plugin];
        static __thread uint64_t last_sec;
        uint64_t sec = arc_pl__now_ns() / 1000000000ull;
        if (sec != last_sec) {
            last_sec = sec;
            static const char *const what[] = { "", " body", " trailers" };
            fprintf(stderr, "arc: plugin '%s' failed: a paused %s%s was not continued "
                    "within pause_timeout (%s)\n", pl->name,
                    r->pause_resp ? "response" : "request", what[stage % 3],
                    pl->fail_open ? "fail_open" : "fail_closed");
        }
        r->fail = ARC_PL_FAIL_TIMEOUT;
        c->dead = true;
        v = pl->fail_open ? stage_go(r, r->next + 1, now_ms) : ARC_PL_FAIL;
        if (v == ARC_PL_FAIL && r->fail == ARC_PL_FAIL_NONE)
            r->fail = ARC_PL_FAIL_TIMEOUT;
    } else {
        r->resume_req = false;
        v = stage_go(r, r->next + 1, now_ms);
    }
    if (v == ARC_PL_PAUSE)
        return v;
    if (stage == ARC_PL_STAGE_HEAD && !r->pause_resp)
        r->req_map = r->map;
    if (stage != ARC_PL_STAGE_BODY)
        r->map = NULL;
    return v;
}

void arc_pl_abandon(struct arc_pl_run *r)
{
    if (!r->paused || r->pause_stage == ARC_PL_STAGE_HEAD)
        return;
    r->paused = false;
    r->resume_req = false;
    if (r->pause_stage == ARC_PL_STAGE_TRAILERS)
        r->map = NULL;
}

void arc_pl_run_end(struct arc_pl_run *r)
{
    if (r->body_mask) {                 /* (header-only filters never touch these) */
        for (size_t i = 0; i < r->n; i++)
            for (int d = 0; d < 2; d++) {
                free(r->ctx[i].held[d].p);
                r->ctx[i].held[d] = (struct arc_pl_buf){ 0 };
            }
        for (int d = 0; d < 2; d++) {
            free(r->work[d].p);
            r->work[d] = (struct arc_pl_buf){ 0 };
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        struct arc_pl_ctx *c = &r->ctx[i];
        ctx_unlink(c);                  /* (also from a dead instance's list) */
        if (!c->created || !ctx_live(c))
            continue;
        struct arc_pl_inst *in = c->inst;
        static const enum arc_pl_export end[3] = { PLX_ON_DONE, PLX_ON_LOG, PLX_ON_DELETE };
        in->cur = c;
        arc_pl__call_seq(in, end, 3, c->id);
        in->cur = NULL;
        in->root_now = 0;
        if (in->slot->queue_ready)
            arc_pl__queues_deliver(in->slot);
    }
    r->n = 0;
    r->paused = false;
    r->map = NULL;
    r->notify = NULL;
}
