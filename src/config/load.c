/*
 * Entry points: read a file or string, parse it into the positioned tree,
 * validate it into a struct arc_config, canonicalise it for the
 * fingerprint. A load either returns a complete, valid config or no config
 * and every error it found.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/schema_int.h"

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcasecmp(s + n - m, suf) == 0;
}

int arc_config_load_string(const char *text, size_t len, const char *name,
                           const char *format, struct arc_config **out,
                           struct arc_config_errors *errs)
{
    struct arc_conf_diag d;
    const char *file = name ? name : "<embedded>";
    *out = NULL;
    arc_config__diag_init(&d, errs, file);
    if (len > ARC_CONF_MAX_BYTES) {
        arc_config__error(&d, 0, 0, "configuration is larger than %u bytes", ARC_CONF_MAX_BYTES);
        arc_config__diag_finish(&d);
        return -1;
    }

    if (!text) {
        text = "";
        len = 0;
    }
    struct arc_ctree t = { 0 };
    int rc;
    if (format && strcmp(format, "json") == 0)
        rc = arc_config__read_json(text, len, &t, &d);
    else if (format && strcmp(format, "toml") == 0)
        rc = arc_config__read_toml(text, len, &t, &d);
    else
        rc = arc_config__read_yaml(text, len, &t, &d);
    struct arc_config *cfg = NULL;
    if (rc == 0) {
        cfg = arc_config__xcalloc(1, sizeof(*cfg));
        cfg->source = arc_config__xstrdup(file);
        arc_config__build(t.root, cfg, &d);
        /* Duplicate keys recorded by the reader fail the load too. */
        if (arc_config__error_count(&d) == 0 &&
            arc_config__canonicalize(t.root, &cfg->canonical_json, cfg->fingerprint) < 0)
            arc_config__error(&d, 0, 0, "cannot compute the canonical form of the document");
    }
    arc_config__tree_free(&t);
    bool failed = arc_config__error_count(&d) > 0;
    arc_config__diag_finish(&d);
    if (failed || rc != 0) {
        arc_config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

/* Reads the whole file; 0 or -errno (-EFBIG past the size limit). */
static int slurp(const char *path, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            if (cap > ARC_CONF_MAX_BYTES) {
                free(b);
                close(fd);
                return -EFBIG;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                close(fd);
                return -ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(b);
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > ARC_CONF_MAX_BYTES) {
        free(b);
        return -EFBIG;
    }
    *buf = b;
    *len = n;
    return 0;
}

int arc_config_load_file(const char *path, struct arc_config **out,
                         struct arc_config_errors *errs)
{
    struct arc_conf_diag d;
    *out = NULL;
    arc_config__diag_init(&d, errs, path);
    char *buf = NULL;
    size_t len = 0;
    int rc = slurp(path, &buf, &len);
    if (rc == -EFBIG) {
        arc_config__error(&d, 0, 0, "file is larger than %u bytes", ARC_CONF_MAX_BYTES);
    } else if (rc == -EISDIR) {
        arc_config__error(&d, 0, 0, "cannot read: %s", strerror(EISDIR));
    } else if (rc < 0) {
        arc_config__error(&d, 0, 0, "cannot open: %s", strerror(-rc));
    } else if (!ends_with(path, ".yaml") && !ends_with(path, ".yml") &&
               !ends_with(path, ".json") && !ends_with(path, ".toml")) {
        arc_config__error(&d, 0, 0, "unknown configuration format (the file name must end in "
                          ".yaml, .yml, .json or .toml)");
    }
    if (arc_config__error_count(&d) > 0) {
        free(buf);
        arc_config__diag_finish(&d);
        return -1;
    }
    const char *format = ends_with(path, ".json") ? "json"
                       : ends_with(path, ".toml") ? "toml" : "yaml";
    rc = arc_config_load_string(buf, len, path, format, out, errs);
    free(buf);
    return rc;
}

static void free_ops(struct arc_header_op *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

void arc_config_free(struct arc_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->source);
    free(cfg->canonical_json);
    free(cfg->node.id);
    free(cfg->node.dns_servers);
    free(cfg->xdp.interface);
    free(cfg->xdp.pin_path);
    free(cfg->xdp.blacklist);
    free(cfg->xdp.whitelist);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        free(cfg->listeners[i].name);
        struct arc_listener_tls_conf *t = cfg->listeners[i].tls;
        if (!t)
            continue;
        for (size_t j = 0; j < t->n_certs; j++) {
            free(t->certs[j].sni);
            free(t->certs[j].cert_pem);
            free(t->certs[j].key_pem);
        }
        free(t->certs);
        for (size_t j = 0; j < t->n_cipher_suites; j++)
            free(t->cipher_suites[j]);
        free(t->cipher_suites);
        free(t->client_ca_pem);
        free(t);
    }
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        free(cfg->upstreams[i].name);
        free(cfg->upstreams[i].endpoints);
        free(cfg->upstreams[i].dns.hostname);
        free(cfg->upstreams[i].lb_key_name);
        free(cfg->upstreams[i].active.path);
        struct arc_upstream_tls_conf *t = cfg->upstreams[i].tls;
        if (t) {
            free(t->ca_pem);
            free(t->client_cert_pem);
            free(t->client_key_pem);
            free(t->server_name);
            free(t);
        }
    }
    free(cfg->upstreams);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct arc_route_conf *r = &cfg->routes[i];
        free(r->name);
        free(r->path);
        for (size_t j = 0; j < r->n_hosts; j++)
            free(r->hosts[j]);
        free(r->hosts);
        for (size_t j = 0; j < r->n_preds; j++) {
            free((char *)r->preds[j].name);
            free((char *)r->preds[j].value);
            free((char *)r->preds[j].id);
        }
        free(r->preds);
        free(r->expr);
        free(r->upstream);
        for (size_t k = 0; k < r->n_mirrors; k++) {
            struct arc_mirror_conf *mc = &r->mirrors[k];
            free(mc->upstream);
            for (size_t j = 0; j < mc->n_set; j++) {
                free(mc->set[j].name);
                free(mc->set[j].value);
            }
            free(mc->set);
            for (size_t j = 0; j < mc->n_remove; j++)
                free(mc->remove[j]);
            free(mc->remove);
            free(mc->path);
            if (mc->compare) {
                for (size_t j = 0; j < mc->compare->n_names; j++)
                    free(mc->compare->names[j]);
                free(mc->compare->names);
                for (size_t j = 0; j < mc->compare->n_body_fields; j++)
                    free(mc->compare->body_fields[j]);
                free(mc->compare->body_fields);
                free(mc->compare);
            }
        }
        free(r->mirrors);
        if (r->split) {
            for (size_t k = 0; k < r->split->n_choices; k++)
                free(r->split->choices[k].upstream);
            free(r->split->choices);
            free(r->split->key_name);
            free(r->split);
        }
        free(r->redirect_location);
        free(r->rewrite_pattern);
        free(r->rewrite_replace);
        free(r->respond_body);
        for (size_t j = 0; j < r->n_respond_headers; j++) {
            free(r->respond_headers[j].name);
            free(r->respond_headers[j].value);
        }
        free(r->respond_headers);
        free_ops(r->req_headers, r->n_req_headers);
        free_ops(r->resp_headers, r->n_resp_headers);
        free(r->trusted_proxies);
        if (r->rate_limit)
            free(r->rate_limit->key_name);
        free(r->rate_limit);
        free(r->file);
        free(r->plugins);
        free(r->plugin_roots);
    }
    free(cfg->routes);
    free(cfg->logging.file);
    for (size_t i = 0; i < cfg->logging.n_redact_headers; i++)
        free(cfg->logging.redact_headers[i]);
    free(cfg->logging.redact_headers);
    for (size_t i = 0; i < cfg->logging.n_redact_query; i++)
        free(cfg->logging.redact_query[i]);
    free(cfg->logging.redact_query);
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        struct arc_plugin_conf *pc = &cfg->plugins[i];
        free(pc->name);
        free(pc->file);
        free(pc->root_id);
        free(pc->config_json);
        for (size_t j = 0; j < pc->n_route_configs; j++)
            free(pc->route_configs[j]);
        free(pc->route_configs);
        free(pc->pos_file);
    }
    free(cfg->plugins);
    free(cfg->plugin_cache_dir);
    free(cfg);
}
