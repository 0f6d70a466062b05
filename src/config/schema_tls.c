/*
 * Schema, part 4: listeners[].tls and upstreams[].tls. Only the shape and
 * the values are checked here; the files named are read, and cipher names
 * resolved, when the TLS contexts are built (src/tls), because the schema
 * must stay free of I/O and of OpenSSL's cipher tables.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema_int.h"

#define REQ ARC_KEY_REQUIRED
#define LATER ARC_KEY_LATER
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct arc_conf_key listener_tls_keys[] = {
    { "certificates", REQ }, { "min_version", 0 }, { "max_version", 0 },
    { "cipher_suites", 0 }, { "session_resumption", 0 }, { "client_auth", 0 },
    { "acme", LATER },
};

static const struct arc_conf_key cert_keys[] = {
    { "sni", 0 }, { "cert_pem", REQ }, { "key_pem", REQ },
};

static const struct arc_conf_key client_auth_keys[] = {
    { "ca_pem", REQ }, { "required", 0 },
};

static const struct arc_conf_key upstream_tls_keys[] = {
    { "ca_pem", 0 }, { "client_cert_pem", 0 }, { "client_key_pem", 0 },
    { "server_name", 0 }, { "insecure", 0 },
};

/* Same order as enum arc_tls_version. */
static const char *const version_names[] = { "tls12", "tls13" };

#define PATH_FLAGS (ARC_STR_NONEMPTY | ARC_STR_NO_CTL)

static bool is_ip(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* Why `h` is not a DNS name (optionally "*.suffix"), or NULL. */
static const char *dns_name_problem(const char *h, size_t n, bool wildcard_ok)
{
    if (n >= 2 && h[0] == '*' && h[1] == '.') {
        if (!wildcard_ok)
            return "must not be a wildcard";
        h += 2;
        n -= 2;
    }
    if (n == 0)
        return "is empty";
    if (n > 253)
        return "is longer than 253 bytes";
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.') {
            if (label == 0)
                return "has an empty label";
            label = 0;
            continue;
        }
        if (c == '*')
            return "may use '*' only as a whole leading label ('*.example.com')";
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return "contains a character not allowed in a host name";
        if (++label > 63)
            return "has a label longer than 63 bytes";
    }
    if (label == 0)
        return "ends with a dot";
    return NULL;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

static void certificates(struct arc_sctx *s, const struct arc_cn *seq, const char *tpath,
                         struct arc_listener_tls_conf *t)
{
    char p[ARC_PATH_MAX], ip[ARC_PATH_MAX], b[72];
    arc_config__path(p, tpath, "certificates");
    if (!arc_config__want(s, seq, p, ARC_CN_SEQ))
        return;
    if (seq->n == 0) {
        arc_config__err(s, seq, "%s: at least one certificate is required", p);
        return;
    }
    t->certs = arc_config__xcalloc(seq->n, sizeof(*t->certs));
    t->n_certs = seq->n;
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        struct arc_tls_cert_conf *c = &t->certs[i];
        arc_config__path_index(ip, p, i);
        if (!arc_config__check_map(s, it, ip, cert_keys, N(cert_keys)))
            continue;
        arc_config__get_str(s, it, ip, "cert_pem", PATH_FLAGS, &c->cert_pem);
        arc_config__get_str(s, it, ip, "key_pem", PATH_FLAGS, &c->key_pem);
        const struct arc_cn *sv = arc_config__val(it, "sni");
        if (!sv) {
            /* Without a name a certificate can only be the fallback. */
            if (i > 0)
                arc_config__err(s, it, "%s: sni is required (only certificates[0], the "
                                "default, may omit it)", ip);
            continue;
        }
        char sp[ARC_PATH_MAX];
        arc_config__path(sp, ip, "sni");
        if (!arc_config__str_value(s, sv, sp, ARC_STR_NONEMPTY))
            continue;
        const char *why = dns_name_problem(sv->v.s.p, sv->v.s.len, true);
        if (!why && is_ip(sv->v.s.p))
            why = "is an IP address; clients never send those as SNI (RFC 6066 §3)";
        if (why) {
            arc_config__err(s, sv, "%s: '%s' %s", sp, arc_config__show(b, sv->v.s.p, sv->v.s.len),
                            why);
            continue;
        }
        c->sni = arc_config__xstrdup(sv->v.s.p);
        lower(c->sni);              /* SNI matching is case-insensitive */
        for (size_t j = 0; j < i; j++)
            if (t->certs[j].sni && strcmp(t->certs[j].sni, c->sni) == 0) {
                arc_config__err(s, sv, "%s: '%s' is already used by %s[%zu]", sp, c->sni, p, j);
                break;
            }
    }
}

static void cipher_suites(struct arc_sctx *s, const struct arc_cn *seq, const char *tpath,
                          struct arc_listener_tls_conf *t)
{
    char p[ARC_PATH_MAX], ip[ARC_PATH_MAX], b[72];
    arc_config__path(p, tpath, "cipher_suites");
    if (!arc_config__want(s, seq, p, ARC_CN_SEQ))
        return;
    if (seq->n == 0) {
        arc_config__err(s, seq, "%s: empty list (omit it for OpenSSL's defaults)", p);
        return;
    }
    t->cipher_suites = arc_config__xcalloc(seq->n, sizeof(char *));
    size_t i = 0;
    for (const struct arc_cn *it = seq->first; it; it = it->next, i++) {
        arc_config__path_index(ip, p, i);
        if (!arc_config__str_value(s, it, ip, ARC_STR_NONEMPTY))
            continue;
        bool ok = true;
        for (size_t k = 0; k < it->v.s.len && ok; k++) {
            char c = it->v.s.p[k];
            ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_';
        }
        /* One suite per entry: OpenSSL cipher strings ("HIGH:!aNULL") would
         * make the list mean something other than what it lists. */
        if (!ok) {
            arc_config__err(s, it, "%s: '%s' is not a cipher suite name (one name per entry, "
                            "e.g. TLS_AES_128_GCM_SHA256 or ECDHE-ECDSA-AES128-GCM-SHA256)", ip,
                            arc_config__show(b, it->v.s.p, it->v.s.len));
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < t->n_cipher_suites && !dup; j++)
            dup = strcmp(t->cipher_suites[j], it->v.s.p) == 0;
        if (dup) {
            arc_config__err(s, it, "%s: '%s' is listed twice", ip, it->v.s.p);
            continue;
        }
        t->cipher_suites[t->n_cipher_suites++] = arc_config__xstrdup(it->v.s.p);
    }
}

void arc_config__listener_tls(struct arc_sctx *s, const struct arc_cn *m, const char *lpath,
                              struct arc_listener_conf *l)
{
    char p[ARC_PATH_MAX], cp[ARC_PATH_MAX];
    arc_config__path(p, lpath, "tls");
    struct arc_listener_tls_conf *t = arc_config__xcalloc(1, sizeof(*t));
    l->tls = t;
    t->min_version = ARC_TLS_V12;
    t->max_version = ARC_TLS_V13;
    t->session_resumption = true;
    t->line = m->line;
    t->col = m->col;
    if (!arc_config__check_map(s, m, p, listener_tls_keys, N(listener_tls_keys)))
        return;
    const struct arc_cn *v;
    if ((v = arc_config__val(m, "certificates")))
        certificates(s, v, p, t);
    int minv = (int)t->min_version, maxv = (int)t->max_version;
    bool min_ok = arc_config__get_enum(s, m, p, "min_version", version_names, N(version_names),
                                       NULL, 0, &minv);
    bool max_ok = arc_config__get_enum(s, m, p, "max_version", version_names, N(version_names),
                                       NULL, 0, &maxv);
    t->min_version = (enum arc_tls_version)minv;
    t->max_version = (enum arc_tls_version)maxv;
    if (min_ok && max_ok && minv > maxv) {
        const struct arc_cn *at = arc_config__val(m, "max_version");
        arc_config__err(s, at ? at : arc_config__val(m, "min_version"),
                        "%s: min_version %s is above max_version %s", p, version_names[minv],
                        version_names[maxv]);
    }
    if ((v = arc_config__val(m, "cipher_suites")))
        cipher_suites(s, v, p, t);
    arc_config__get_bool(s, m, p, "session_resumption", &t->session_resumption);
    if ((v = arc_config__val(m, "client_auth"))) {
        arc_config__path(cp, p, "client_auth");
        if (arc_config__check_map(s, v, cp, client_auth_keys, N(client_auth_keys))) {
            t->client_auth = true;
            t->client_auth_required = true;
            arc_config__get_str(s, v, cp, "ca_pem", PATH_FLAGS, &t->client_ca_pem);
            arc_config__get_bool(s, v, cp, "required", &t->client_auth_required);
        }
    }
}

void arc_config__upstream_tls(struct arc_sctx *s, const struct arc_cn *m, const char *upath,
                              struct arc_upstream_conf *u)
{
    char p[ARC_PATH_MAX], kp[ARC_PATH_MAX], b[72];
    arc_config__path(p, upath, "tls");
    struct arc_upstream_tls_conf *t = arc_config__xcalloc(1, sizeof(*t));
    u->tls = t;
    t->line = m->line;
    t->col = m->col;
    if (!arc_config__check_map(s, m, p, upstream_tls_keys, N(upstream_tls_keys)))
        return;
    arc_config__get_str(s, m, p, "ca_pem", PATH_FLAGS, &t->ca_pem);
    arc_config__get_str(s, m, p, "client_cert_pem", PATH_FLAGS, &t->client_cert_pem);
    arc_config__get_str(s, m, p, "client_key_pem", PATH_FLAGS, &t->client_key_pem);
    arc_config__get_bool(s, m, p, "insecure", &t->insecure);
    const struct arc_cn *v = arc_config__val(m, "server_name");
    if (v && arc_config__str_value(s, v, arc_config__path(kp, p, "server_name"), ARC_STR_NONEMPTY)) {
        const char *why = is_ip(v->v.s.p) ? NULL : dns_name_problem(v->v.s.p, v->v.s.len, false);
        if (why) {
            arc_config__err(s, v, "%s: '%s' %s", kp, arc_config__show(b, v->v.s.p, v->v.s.len),
                            why);
        } else {
            t->server_name = arc_config__xstrdup(v->v.s.p);
            lower(t->server_name);
        }
    }
    const struct arc_cn *cert = arc_config__val(m, "client_cert_pem");
    const struct arc_cn *key = arc_config__val(m, "client_key_pem");
    if (cert && !key)
        arc_config__err(s, cert, "%s.client_cert_pem: client_key_pem is required with it", p);
    if (key && !cert)
        arc_config__err(s, key, "%s.client_key_pem: client_cert_pem is required with it", p);
    if (t->insecure && arc_config__val(m, "ca_pem"))
        arc_config__err(s, arc_config__val(m, "ca_pem"),
                        "%s.ca_pem: has no effect with insecure: true", p);
    /* Endpoints are IP addresses, so without a name there is nothing to
     * check the upstream's certificate against. */
    if (!t->insecure && !v)
        arc_config__err(s, m, "%s: server_name is required to verify the upstream's "
                        "certificate (or set insecure: true)", p);
}
