/*
 * Request keys (lb.key, split.key) and routes[].split.
 *
 * A split chooses the upstream of each request among the route's choices,
 * in proportion to their weights. Without a key (or a request without the
 * header or cookie) the choice is random. With one, it is weighted
 * rendezvous hashing: every choice scores weight / -ln(u), u a uniform
 * number from the hash of (key, choice index), and the highest wins. The
 * same key gets the same choice on every worker and node, each choice gets
 * its weight's share of the keys, and a change of one weight or one added
 * choice moves only the keys that the change must move.
 *
 * Thread: worker.
 */
#include "proxy/proxy_int.h"

#include <math.h>
#include <string.h>

/* The value of cookie `name` in the request's Cookie fields (RFC 6265
 * §4.2.1: "a=1; b=2", possibly several fields over HTTP/2). */
static bool cookie_value(const struct arc_req *q, const char *name, struct arc_str *out)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < q->n_hdrs; i++) {
        if (!arc_str_ieq(q->hdrs[i].name, "cookie", 6))
            continue;
        const char *p = q->hdrs[i].value.p, *end = p + q->hdrs[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *item = p;
            while (p < end && *p != ';')
                p++;
            if ((size_t)(p - item) > nl && memcmp(item, name, nl) == 0 && item[nl] == '=') {
                *out = (struct arc_str){ item + nl + 1, (size_t)(p - item) - nl - 1 };
                return true;
            }
        }
    }
    return false;
}

bool arc_px__req_key(struct arc_exchange *ex, enum arc_lb_key_by by, const char *name,
                     uint64_t *h)
{
    const struct arc_req *q = &ex->req;
    switch (by) {
    case ARC_LB_KEY_CLIENT_IP: {
        const struct sockaddr *sa = arc_px__peer_addr(ex->client);
        if (!sa)
            return false;
        if (sa->sa_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
            *h = arc_lb_hash(&in->sin_addr, sizeof(in->sin_addr));
        } else {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
            *h = arc_lb_hash(&in6->sin6_addr, sizeof(in6->sin6_addr));
        }
        return true;
    }
    case ARC_LB_KEY_HEADER: {
        size_t nl = strlen(name);
        for (size_t i = 0; i < q->n_hdrs; i++)
            if (arc_str_ieq(q->hdrs[i].name, name, nl)) {
                *h = arc_lb_hash(q->hdrs[i].value.p, q->hdrs[i].value.len);
                return true;
            }
        return false;
    }
    case ARC_LB_KEY_COOKIE: {
        struct arc_str v;
        if (!cookie_value(q, name, &v))
            return false;
        *h = arc_lb_hash(v.p, v.len);
        return true;
    }
    }
    return false;
}

/* splitmix64's finaliser: the per-choice hash of a key. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

const struct arc_upstream_rt *arc_px__split_pick(struct arc_worker *w, struct arc_exchange *ex,
                                                 const struct arc_route_rt *r)
{
    const struct arc_split_conf *sc = r->conf->split;
    size_t n = sc->n_choices;
    uint64_t key;
    bool keyed = false;
    switch (sc->key) {
    case ARC_SPLIT_RANDOM:
        break;
    case ARC_SPLIT_CLIENT_IP:
        keyed = arc_px__req_key(ex, ARC_LB_KEY_CLIENT_IP, NULL, &key);
        break;
    case ARC_SPLIT_HEADER:
        keyed = arc_px__req_key(ex, ARC_LB_KEY_HEADER, sc->key_name, &key);
        break;
    case ARC_SPLIT_COOKIE:
        keyed = arc_px__req_key(ex, ARC_LB_KEY_COOKIE, sc->key_name, &key);
        break;
    }
    if (!keyed) {
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += sc->choices[i].weight;
        /* (the config has at least one weight above 0) */
        uint64_t x = total ? arc_px__rand(w) % total : 0;
        for (size_t i = 0; i < n; i++) {
            if (x < sc->choices[i].weight)
                return r->split[i];
            x -= sc->choices[i].weight;
        }
        return r->split[0];
    }
    size_t best = 0;
    double best_score = -1;
    for (size_t i = 0; i < n; i++) {
        if (!sc->choices[i].weight)
            continue;
        /* u in (0, 1): 53 bits of the hash, never 0 */
        double u = ((double)(mix(key ^ mix(i + 1)) >> 11) + 0.5) / 9007199254740992.0;
        double score = (double)sc->choices[i].weight / -log(u);
        if (score > best_score) {
            best_score = score;
            best = i;
        }
    }
    return r->split[best];
}
