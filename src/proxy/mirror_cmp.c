/*
 * routes[].mirror[].compare: response summaries, the shadow's response
 * reader and the comparison (mirror_int.h says who calls what).
 *
 * The shadow's reader:
 *
 *   HEAD ──head parsed (1xx skipped)──▶ BODY ──framing says it ended──▶ complete
 *     │                                   └── EOF: complete only when close-delimited
 *     └── malformed, or longer than the head limit ──▶ error
 *
 * With compare.body: false the head completes it (the body is not read).
 */
#include "proxy/mirror_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K1 0x9e3779b97f4a7c15ull

static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= K1;
    return h ^ (h >> 31);
}

static inline uint64_t fmix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void arc_mc__dg_init(struct arc_mc_digest *d)
{
    *d = (struct arc_mc_digest){ .h = K1 };
}

void arc_mc__dg_update(struct arc_mc_digest *d, const void *p, size_t n)
{
    const unsigned char *b = p;
    d->len += n;
    /* Words are read little-endian whatever the host, so the bytes of a
     * split word (carry) make the same word as an unsplit one. */
    while (n && d->nc) {
        d->carry |= (uint64_t)*b++ << (8 * d->nc++);
        n--;
        if (d->nc == 8) {
            d->h = mix(d->h, d->carry);
            d->carry = 0;
            d->nc = 0;
        }
    }
    for (; n >= 8; b += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        d->h = mix(d->h, w);
    }
    while (n--)
        d->carry |= (uint64_t)*b++ << (8 * d->nc++);
}

uint64_t arc_mc__dg_final(const struct arc_mc_digest *d)
{
    return fmix(mix(d->h, d->carry ^ ((uint64_t)d->nc << 56)) ^ d->len);
}

uint64_t arc_mc__name_hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 0x100000001b3ull;
    }
    return fmix(h);
}

/* Framing and hop-by-hop fields differ with the connection, not the
 * answer (a chunked body against a Content-Length one, an HTTP/2 primary);
 * Date differs with the second. The body comparison covers the size. */
static bool always_ignored(struct arc_str n)
{
    static const char *const names[] = { "connection", "keep-alive", "proxy-connection", "te",
                                         "trailer", "transfer-encoding", "upgrade",
                                         "content-length", "date" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (arc_str_ieq(n, names[i], strlen(names[i])))
            return true;
    return false;
}

void arc_mc__sum_head(struct arc_mc_sum *s, int status, const struct arc_h1_header *h, size_t n)
{
    s->status = status;
    s->head = true;
    s->complete = false;
    s->over = false;
    s->n_f = 0;
    s->over_h = 0;
    arc_mc__dg_init(&s->body);
    for (size_t i = 0; i < n; i++) {
        if (always_ignored(h[i].name))
            continue;
        uint64_t nh = arc_mc__name_hash(h[i].name.p, h[i].name.len);
        struct arc_mc_digest vd;
        arc_mc__dg_init(&vd);
        arc_mc__dg_update(&vd, h[i].value.p, h[i].value.len);
        uint64_t vh = arc_mc__dg_final(&vd);
        size_t k = 0;
        while (k < s->n_f && s->f[k].name_h != nh)
            k++;
        if (k < s->n_f) {
            s->f[k].val_h = mix(s->f[k].val_h, vh);      /* repeated: in order */
            continue;
        }
        if (s->n_f == ARC_MC_FIELDS) {
            s->over = true;
            s->over_h += fmix(nh ^ (vh * K1));
            continue;
        }
        struct arc_mc_field *f = &s->f[s->n_f++];
        f->name_h = nh;
        f->val_h = mix(K1, vh);
        size_t l = h[i].name.len < sizeof(f->name) - 1 ? h[i].name.len : sizeof(f->name) - 1;
        for (size_t c = 0; c < l; c++) {
            char ch = h[i].name.p[c];
            f->name[c] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
        }
        f->name[l] = '\0';
    }
}

void arc_mc__job_free(struct arc_mc_job *j)
{
    if (!j)
        return;
    free(j->bfields);
    free(j->pbody);
    free(j);
}

/* ------------------------------------------------------------ the shadow's reader */

/* ignore_body_fields: the shadow's body is kept too (up to max_body). */
static void keep_body(struct arc_mc_reader *r, const struct arc_mc_job *j, const char *p,
                      size_t n)
{
    if (!j->n_bfields || r->jover || n == 0)
        return;
    if (r->jlen + n > j->max_body) {
        r->jover = true;
        free(r->jb);
        r->jb = NULL;
        r->jlen = r->jcap = 0;
        return;
    }
    if (r->jlen + n > r->jcap) {
        size_t c = r->jcap ? r->jcap * 2 : 4096;
        while (c < r->jlen + n)
            c *= 2;
        char *b = realloc(r->jb, c);
        if (!b) {
            r->jover = true;
            return;
        }
        r->jb = b;
        r->jcap = c;
    }
    memcpy(r->jb + r->jlen, p, n);
    r->jlen += n;
}

static void body_bytes(struct arc_mc_reader *r, const struct arc_mc_job *j, const char *p,
                       size_t n)
{
    arc_mc__dg_update(&r->sum.body, p, n);
    keep_body(r, j, p, n);
}

static int body_in(struct arc_mc_reader *r, const struct arc_mc_job *j, const char *p, size_t n)
{
    switch (r->framing) {
    case ARC_H1_BODY_NONE:
        return 1;
    case ARC_H1_BODY_LENGTH: {
        size_t take = (uint64_t)n < r->left ? n : (size_t)r->left;
        body_bytes(r, j, p, take);
        r->left -= take;
        return r->left == 0;
    }
    case ARC_H1_BODY_CHUNKED:
        while (n) {
            size_t used, dlen;
            const char *data, *err;
            enum arc_h1_chunk_rc rc = arc_h1_chunked_next(&r->ck, p, n, &used, &data, &dlen, &err);
            p += used;
            n -= used;
            if (rc == ARC_H1_CHUNK_ERROR)
                return -1;
            if (rc == ARC_H1_CHUNK_DONE)
                return 1;
            if (rc == ARC_H1_CHUNK_DATA)
                body_bytes(r, j, data, dlen);
            else if (rc == ARC_H1_CHUNK_AGAIN)
                break;
        }
        return 0;
    default:                            /* close-delimited */
        body_bytes(r, j, p, n);
        return 0;
    }
}

int arc_mc__feed(struct arc_mc_reader *r, const struct arc_mc_job *j, const char *p, size_t n)
{
    if (r->head_done)
        return j->body ? body_in(r, j, p, n) : 1;
    size_t cap = j->lim.max_header_bytes ? j->lim.max_header_bytes
                                         : ARC_H1_DEFAULT_MAX_HEADER_BYTES;
    if (r->hlen + n > r->hcap) {
        size_t c = r->hcap ? r->hcap : 1024;
        while (c < r->hlen + n)
            c *= 2;
        char *b = realloc(r->hb, c);
        if (!b)
            return -1;
        r->hb = b;
        r->hcap = c;
    }
    size_t from = r->hlen > 3 ? r->hlen - 3 : 0;
    memcpy(r->hb + r->hlen, p, n);
    r->hlen += n;
    for (;;) {
        /* Parse only once an end of head may be there. */
        if (!memmem(r->hb + from, r->hlen - from, "\r\n\r\n", 4) &&
            !memmem(r->hb + from, r->hlen - from, "\n\n", 2))
            return r->hlen > cap ? -1 : 0;
        size_t mh = j->lim.max_headers ? j->lim.max_headers : ARC_H1_DEFAULT_MAX_HEADERS;
        struct arc_h1_header *hdrs = malloc(mh * sizeof(*hdrs));
        if (!hdrs)
            return -1;
        struct arc_h1_response resp;
        enum arc_h1_status rc = arc_h1_parse_response(r->hb, r->hlen, &j->lim, j->is_head, false,
                                                      hdrs, mh, &resp);
        if (rc == ARC_H1_INCOMPLETE) {
            free(hdrs);
            return r->hlen > cap ? -1 : 0;
        }
        if (rc != ARC_H1_OK || resp.status == 101) {
            free(hdrs);
            return -1;
        }
        size_t rest = r->hlen - resp.head_len;
        if (resp.status < 200) {        /* interim: the final head follows */
            free(hdrs);
            memmove(r->hb, r->hb + resp.head_len, rest);
            r->hlen = rest;
            from = 0;
            continue;
        }
        arc_mc__sum_head(&r->sum, resp.status, hdrs, resp.n_headers);
        free(hdrs);
        r->head_done = true;
        r->framing = resp.body;
        r->left = resp.content_length;
        arc_h1_chunked_init(&r->ck);
        if (!j->body)
            return 1;
        if (r->framing == ARC_H1_BODY_NONE ||
            (r->framing == ARC_H1_BODY_LENGTH && r->left == 0))
            return 1;
        int res = rest ? body_in(r, j, r->hb + resp.head_len, rest) : 0;
        free(r->hb);
        r->hb = NULL;
        r->hlen = r->hcap = 0;
        return res;
    }
}

int arc_mc__eof(struct arc_mc_reader *r, const struct arc_mc_job *j)
{
    (void)j;
    return r->head_done && r->framing == ARC_H1_BODY_CLOSE ? 1 : -1;
}

void arc_mc__reader_free(struct arc_mc_reader *r)
{
    free(r->hb);
    r->hb = NULL;
    free(r->jb);
    r->jb = NULL;
}

/* ------------------------------------------------------------ JSON bodies */

static bool named(const struct arc_mc_job *j, const char *key)
{
    const char *n = j->bfields;
    for (size_t i = 0; i < j->n_bfields; i++, n += strlen(n) + 1)
        if (strcmp(n, key) == 0)
            return true;
    return false;
}

static void strip(json_t *v, const struct arc_mc_job *j)
{
    if (json_is_object(v)) {
        const char *key;
        json_t *m;
        void *tmp;
        json_object_foreach_safe(v, tmp, key, m) {
            if (named(j, key))
                json_object_del(v, key);
            else
                strip(m, j);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
            strip(m, j);
    }
}

char *arc_mc__json_canon(const struct arc_mc_job *j, const char *p, size_t n)
{
    json_error_t e;
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY, &e);
    if (!v)
        return NULL;
    strip(v, j);
    char *s = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    return s;
}

/* With ignore_body_fields: 1 = the bodies differ, 0 = they are equal as
 * JSON values without the named members, -1 = not comparable so (one is
 * not JSON, or was over max_body): then the digests decide. */
static int json_differs(const struct arc_mc_job *j, const struct arc_mc_reader *r)
{
    if (!j->n_bfields || !j->pbody || !r->jb || r->jover)
        return -1;
    char *a = arc_mc__json_canon(j, j->pbody, j->pbody_len);
    char *b = a ? arc_mc__json_canon(j, r->jb, r->jlen) : NULL;
    int d = a && b ? strcmp(a, b) != 0 : -1;
    free(a);
    free(b);
    return d;
}

/* ------------------------------------------------------------ comparing */

static bool counted(const struct arc_mc_job *j, uint64_t nh)
{
    bool listed = false;
    for (size_t i = 0; i < j->n_names; i++)
        if (j->names[i] == nh)
            listed = true;
    return j->fields == ARC_MCF_LISTED ? listed : j->fields == ARC_MCF_ALL && !listed;
}

static const struct arc_mc_field *find(const struct arc_mc_sum *s, uint64_t nh)
{
    for (size_t i = 0; i < s->n_f; i++)
        if (s->f[i].name_h == nh)
            return &s->f[i];
    return NULL;
}

static void add_name(char *out, size_t cap, size_t *o, const char *name)
{
    if (*o >= cap)
        return;
    int k = snprintf(out + *o, cap - *o, "%s%s", *o ? "," : "", name);
    *o += k > 0 ? (size_t)k : 0;
    if (*o >= cap)
        *o = cap;
}

unsigned arc_mc__compare(const struct arc_mc_job *j, const struct arc_mc_reader *r, char *fields,
                         size_t cap)
{
    const struct arc_mc_sum *pr = &j->primary, *sh = &r->sum;
    unsigned d = 0;
    size_t o = 0;
    if (cap)
        fields[0] = '\0';
    if (pr->status != sh->status)
        d |= ARC_MC_DIFF_STATUS;
    if (!pr->head)                      /* Arc's own answer: only its status is known */
        return d;
    if (j->fields != ARC_MCF_NONE) {
        for (size_t i = 0; i < pr->n_f; i++) {
            if (!counted(j, pr->f[i].name_h))
                continue;
            const struct arc_mc_field *f = find(sh, pr->f[i].name_h);
            if (!f || f->val_h != pr->f[i].val_h) {
                d |= ARC_MC_DIFF_FIELDS;
                add_name(fields, cap, &o, pr->f[i].name);
            }
        }
        for (size_t i = 0; i < sh->n_f; i++)
            if (counted(j, sh->f[i].name_h) && !find(pr, sh->f[i].name_h)) {
                d |= ARC_MC_DIFF_FIELDS;
                add_name(fields, cap, &o, sh->f[i].name);
            }
        if (j->fields == ARC_MCF_ALL && (pr->over != sh->over || pr->over_h != sh->over_h)) {
            d |= ARC_MC_DIFF_FIELDS;
            add_name(fields, cap, &o, "(fields past the 32nd name)");
        }
    }
    if (j->body) {
        int jd = json_differs(j, r);
        if (jd > 0 || (jd < 0 && (pr->body.len != sh->body.len ||
                                  arc_mc__dg_final(&pr->body) != arc_mc__dg_final(&sh->body))))
            d |= ARC_MC_DIFF_BODY;
    }
    return d;
}
