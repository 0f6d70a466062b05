/**
 * Arc configuration: reading YAML/JSON into a positioned tree, canonical JSON
 * and its fingerprint, schema validation, and the plain-C `struct arc_config`
 * that the snapshot compiler (config/snapshot.h) turns into runtime tables.
 *
 * Ownership: everything reachable from a `struct arc_config` is owned by it
 * and released by arc_config_free(). Strings are NUL-terminated heap copies.
 * Thread: the control thread (main) only; a loaded config is immutable and
 * may then be read from any thread.
 *
 * Units: every duration is in milliseconds (uint64_t), every size in bytes.
 */
#ifndef ARC_CONFIG_CONFIG_H
#define ARC_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "router/router.h"

/* ---------------------------------------------------------------- errors */

/** One problem found in a config file, with the node it points at. */
struct arc_config_error {
    char *file;     /* path as given by the caller */
    int line, col;  /* 1-based; 0 if unknown (e.g. file unreadable) */
    char *msg;      /* e.g. "unknown key 'lisener' in listeners[0]" */
};

/** All problems of one load, in file order. Owned. */
struct arc_config_errors {
    struct arc_config_error *v;
    size_t n, cap;
};

/* Prints "file:line:col: error: msg" lines, one per error. */
void arc_config_errors_print(const struct arc_config_errors *errs, void *file /* FILE* */);
void arc_config_errors_dispose(struct arc_config_errors *errs);

/* ---------------------------------------------------------------- schema */

struct arc_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64];              /* as written, normalised "ip:port" / "[ip]:port" */
};

struct arc_node_conf {
    char *id;                   /* default: gethostname() */
    uint32_t workers;           /* 0 = one per online CPU */
    uint32_t max_connections;   /* per node, 0 = unlimited */
    uint64_t read_timeout;      /* 30s: client header/body read inactivity */
    uint64_t write_timeout;     /* 30s: client send stall */
    uint64_t idle_timeout;      /* 60s: keep-alive idle */
    uint64_t drain_timeout;     /* 30s: graceful shutdown budget */
    uint64_t lingering_timeout; /* 2s (ext): how long a closing client connection keeps
                                   reading and dropping input after our last byte */
    uint32_t max_buffered_output; /* 256kb (ext): output queued for one connection before
                                     the other side of the exchange stops being read */
    uint32_t max_interim_responses; /* 8 (ext): 1xx responses forwarded per exchange */
    uint32_t http2_header_table_size; /* 0 (ext): HPACK dynamic table of the header blocks
                                         Arc encodes (0 = static table and literals only) */
    /* node.dns (ext, restart-only): the resolver of dns discovery */
    struct arc_addr *dns_servers;   /* servers, in order; NULL: the system's (resolv.conf) */
    size_t n_dns_servers;
    uint64_t dns_timeout;           /* 1s: the first try's timeout (c-ares doubles it) */
    uint32_t dns_attempts;          /* 2: tries per server */
    /* node.mirror (ext, restart-only): the mirror thread's bounds */
    uint32_t mirror_queue;          /* 1024: copies waiting per worker (power of two) */
    uint32_t mirror_max_in_flight;  /* 4096: copies under way in all */
};

struct arc_uring_conf {
    uint32_t uring_entries;     /* 2048, power of two */
    bool sqpoll;                /* false */
    uint32_t sqpoll_idle_ms;    /* 2000 */
    uint32_t buffer_size;       /* 16kb, provided-buffer size (power of two, 4kb..1mb) */
    uint32_t buffer_count;      /* 1024 per worker (power of two, <= 32768): 16 MiB at 16kb */
    uint32_t buffers_per_connection; /* 4 (ext): provided buffers one connection may hold
                                        while its peer is slow; beyond, bytes are copied */
};

enum arc_listener_kind { ARC_LISTENER_HTTP = 0, ARC_LISTENER_HTTPS = 1 };

/* TLS protocol versions a listener accepts (TLS 1.0/1.1 are obsolete, RFC 8996). */
enum arc_tls_version { ARC_TLS_V12 = 0, ARC_TLS_V13 = 1 };

struct arc_tls_cert_conf {
    char *sni;                  /* "a.example" or "*.example" (lower-case); NULL only for
                                   certificates[0], the default */
    char *cert_pem;             /* certificate, then its chain, PEM */
    char *key_pem;              /* unencrypted private key, PEM */
};

/* listeners[].tls (kind https). Paths are used as written (relative to the
 * working directory) and read when the TLS contexts are built. */
struct arc_listener_tls_conf {
    struct arc_tls_cert_conf *certs;
    size_t n_certs;             /* >= 1; certs[0] is the default */
    enum arc_tls_version min_version; /* tls12 */
    enum arc_tls_version max_version; /* tls13 */
    char **cipher_suites;       /* OpenSSL or IANA names, TLS 1.2 and 1.3 mixed; */
    size_t n_cipher_suites;     /* 0 = OpenSSL's defaults */
    bool session_resumption;    /* true: stateless session tickets */
    bool client_auth;           /* client_auth given */
    char *client_ca_pem;        /* client_auth.ca_pem */
    bool client_auth_required;  /* client_auth.required, true */
    int line, col;              /* position of the tls mapping */
};

/* upstreams[].tls */
struct arc_upstream_tls_conf {
    char *ca_pem;               /* NULL = the system CA bundle */
    char *client_cert_pem;      /* both or neither */
    char *client_key_pem;
    char *server_name;          /* host name (SNI + check) or IP; required unless insecure */
    bool insecure;              /* false; true = no certificate verification at all */
    int line, col;              /* position of the tls mapping */
};

enum arc_up_protocol { ARC_UP_HTTP1 = 0, ARC_UP_HTTP2 = 1 };

struct arc_listener_conf {
    char *name;
    enum arc_listener_kind kind;
    struct arc_addr bind;       /* port 0 = kernel-assigned (shared by all workers) */
    uint32_t backlog;           /* socket.backlog, 4096 */
    uint32_t tcp_fastopen_backlog; /* 0 = off */
    int dscp;                   /* -1 = unset, else 0..63 */
    uint64_t defer_accept;      /* ms, 0 = off (TCP_DEFER_ACCEPT) */
    bool keepalive_enabled;     /* true if socket.keepalive given */
    uint64_t keepalive_idle, keepalive_interval; /* ms */
    uint32_t keepalive_count;
    struct arc_listener_tls_conf *tls; /* kind https: set; otherwise NULL */
};

enum arc_lb_algorithm {
    ARC_LB_ROUND_ROBIN,
    ARC_LB_WEIGHTED_ROUND_ROBIN,
    ARC_LB_LEAST_REQUESTS,
    ARC_LB_PEAK_EWMA,           /* the default */
    ARC_LB_CONSISTENT_HASH,     /* ketama ring, lb.key */
    ARC_LB_MAGLEV,              /* Maglev lookup table, lb.key */
};

/* lb.key.by: what consistent_hash and maglev hash. */
enum arc_lb_key_by { ARC_LB_KEY_CLIENT_IP, ARC_LB_KEY_HEADER, ARC_LB_KEY_COOKIE };

struct arc_endpoint_conf {
    struct arc_addr address;
    uint32_t weight;            /* 1, range 1..10000 */
};

/* upstreams[].health.passive: outlier ejection from real traffic, per
 * worker per endpoint (upstream/health.h). */
struct arc_passive_conf {
    bool enabled;               /* health.passive given */
    uint32_t consecutive_failures; /* 5; 0 = this rule is off */
    double error_rate_threshold;   /* 0.2; 0 = this rule is off */
    uint64_t window;            /* 30s: error-rate window */
    uint32_t min_requests;      /* 10 (ext): attempts in the window before the rate counts */
    uint64_t ejection_time;     /* 30s: first ejection; the n-th lasts n times as long */
    uint64_t max_ejection_time; /* 300s (ext): cap of the growing ejection time */
    uint32_t max_ejection_percent; /* 50: at most this share of endpoints ejected at once */
};

/* upstreams[].circuit_breaker (ext): limits per worker, 0 = none. Over a
 * request limit, or over a connection limit with the wait queue full, a
 * request is answered 503 at once. */
struct arc_circuit_conf {
    uint32_t max_connections;   /* upstream connections of the upstream */
    uint32_t max_pending;       /* requests waiting for a connection (the wait queue) */
    uint32_t max_requests;      /* requests in flight to the upstream */
    uint32_t ep_max_connections, ep_max_pending, ep_max_requests; /* per_endpoint.* */
    uint64_t pending_timeout;   /* 1s: longest wait in the queue, then 503 */
};

/* upstreams[].health.active: HTTP checks from the health-check thread
 * (upstream/active.h), node-wide per endpoint. */
#define ARC_ACTIVE_MAX_RANGES 8
struct arc_active_conf {
    bool enabled;               /* health.active given */
    uint64_t interval;          /* 10s, jittered by up to 10% */
    uint64_t timeout;           /* 1s: connect to status line */
    char *path;                 /* "/health" */
    uint16_t expect_lo[ARC_ACTIVE_MAX_RANGES], expect_hi[ARC_ACTIVE_MAX_RANGES];
    size_t n_expect;            /* [200-399] */
    uint32_t fail_after;        /* 3 failed checks in a row: down */
    uint32_t pass_after;        /* 2 passed checks in a row: up again */
};

struct arc_upstream_conf {
    char *name;
    struct arc_endpoint_conf *endpoints;
    size_t n_endpoints;         /* >= 1 (static); dns: 0 until resolved */
    enum arc_lb_algorithm lb;
    uint64_t peak_ewma_decay;   /* lb.decay, 10s */
    enum arc_lb_key_by lb_key_by;   /* lb.key.by, client_ip */
    char *lb_key_name;          /* lb.key.name (header or cookie name), else NULL */
    uint32_t lb_virtual_nodes;  /* lb.virtual_nodes, 160: consistent_hash ring points per
                                   endpoint of average weight */
    uint32_t lb_table_size;     /* lb.table_size (ext), 65537: maglev slots, a prime */
    /* pool */
    uint32_t pool_max_idle;     /* 1024, per worker per endpoint */
    uint64_t pool_idle_ttl;     /* 30s */
    uint64_t pool_max_lifetime; /* 300s */
    uint32_t pool_max_connections; /* 0 = unlimited, per endpoint per node */
    /* timeouts */
    uint64_t connect_timeout;   /* 2s */
    uint64_t write_timeout;     /* 30s */
    uint64_t ttfb_timeout;      /* 30s */
    uint64_t read_timeout;      /* 30s */
    struct arc_upstream_tls_conf *tls;  /* NULL = plain TCP */
    struct arc_passive_conf passive;    /* health.passive */
    struct arc_active_conf active;      /* health.active */
    struct arc_circuit_conf circuit;    /* circuit_breaker */
    uint32_t panic_threshold;   /* health.panic_threshold (ext), 50: below this share of
                                   usable endpoints, balance over all of them */
    enum arc_up_protocol protocol;      /* http1 */
    int protocol_line, protocol_col;    /* position of 'protocol' if written, else 0 */
    /* discovery: {type: dns} (hostname NULL: static). endpoints then hold the
     * last resolved set, filled in when a snapshot is built (config/discovered.c,
     * upstream/dns.c); empty until the first answer. */
    struct arc_dns_discovery_conf {
        char *hostname;         /* required with dns */
        uint16_t port;          /* required with dns */
        bool respect_ttl;       /* true: next lookup when the shortest TTL runs out */
        uint64_t fallback_poll; /* 10s: the interval without TTLs (respect_ttl false,
                                   /etc/hosts answers, TTL 0) and the retry after a failure */
    } dns;
};

enum arc_action_kind { ARC_ACTION_UPSTREAM, ARC_ACTION_REDIRECT, ARC_ACTION_RESPOND };
enum arc_hdr_op { ARC_HDR_ADD, ARC_HDR_SET, ARC_HDR_REMOVE };

struct arc_header_op {
    enum arc_hdr_op op;
    char *name;
    char *value;                /* NULL for remove */
    bool vars;                  /* value holds $variables (expanded per request) */
};

/* Variables in header operation values and redirect locations, in the
 * order of enum arc_var: `$host`, `$client_ip`, ... (config.c checks the
 * names; the proxy expands them). */
enum arc_var {
    ARC_VAR_HOST, ARC_VAR_CLIENT_IP, ARC_VAR_CLIENT_PORT, ARC_VAR_SCHEME, ARC_VAR_METHOD,
    ARC_VAR_PATH, ARC_VAR_QUERY, ARC_VAR_REQUEST_URI, ARC_VAR_ROUTE, ARC_VAR_REQUEST_ID,
    ARC_VAR__COUNT
};
extern const char *const arc_var_names[ARC_VAR__COUNT];
/* The variable `$name` (n bytes after the '$'), or -1. */
int arc_var_lookup(const char *name, size_t n);

struct arc_header_kv {
    char *name;
    char *value;
};

/* Bit per method in route match.methods (0 mask = any method). */
enum {
    ARC_M_GET = 1u << 0, ARC_M_HEAD = 1u << 1, ARC_M_POST = 1u << 2,
    ARC_M_PUT = 1u << 3, ARC_M_DELETE = 1u << 4, ARC_M_CONNECT = 1u << 5,
    ARC_M_OPTIONS = 1u << 6, ARC_M_TRACE = 1u << 7, ARC_M_PATCH = 1u << 8,
};

/* A network prefix, e.g. forwarded.trusted_proxies entries. */
struct arc_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    uint8_t addr[16];           /* network bytes, host bits zero; AF_INET uses addr[0..3] */
    uint8_t prefix;             /* 0..32 (AF_INET) or 0..128 (AF_INET6) */
    char text[64];              /* normalised "10.0.0.0/8", "2001:db8::/32" */
};

/* routes[].action.retry: present (even {}) turns retries on. */
#define ARC_RETRY_MAX_STATUSES 16
struct arc_retry_conf {
    bool enabled;
    uint32_t max_retries;       /* 1, 0..10: attempts after the first */
    uint64_t backoff;           /* 50ms: before retry n, backoff * 2^(n-1), jittered to
                                   [half, full] */
    bool idempotent_only;       /* true: only GET HEAD OPTIONS TRACE PUT DELETE */
    bool on_connect_failure;    /* on: connect_failure (refused, unreachable, timeout) */
    bool on_reset;              /* on: reset (closed before a response head) */
    uint16_t statuses[ARC_RETRY_MAX_STATUSES]; /* on: response statuses (504 also
                                   covers a first-byte timeout, 502 a malformed head) */
    size_t n_statuses;
    uint32_t budget;            /* 20 (percent, ext): retries at most this share of the
                                   route's requests over budget_window */
    uint32_t budget_min;        /* 3 (ext): retries always allowed per window */
    uint64_t budget_window;     /* 10s (ext) */
    uint64_t max_body;          /* 64kb (ext): request bodies kept for replay up to this */
};

/* routes[].rate_limit (schema_limit.c). Algorithms are enum arc_rl_algo
 * (limit/limit.h) in the same order as the names in the file. */
enum arc_rl_key_by {
    ARC_RL_BY_CLIENT_IP, ARC_RL_BY_HEADER, ARC_RL_BY_COOKIE, ARC_RL_BY_ROUTE,
    ARC_RL_BY_CLIENT_CERT,
};
enum arc_rl_headers { ARC_RL_HEADERS_ALWAYS, ARC_RL_HEADERS_REJECTED, ARC_RL_HEADERS_NONE };

struct arc_rate_limit_conf {
    double qps;                 /* required, 0.01 .. 1,000,000 */
    uint32_t burst;             /* bucket algorithms; default ceil(qps) */
    int algorithm;              /* gcra (0) */
    uint64_t window;            /* window algorithms, 1s */
    uint64_t max_delay;         /* leaky_bucket, 1s */
    uint32_t max_keys;          /* 100000 */
    int key_by;                 /* enum arc_rl_key_by, client_ip */
    char *key_name;             /* header / cookie name */
    uint32_t ipv6_prefix;       /* 64 */
    int status;                 /* 429 */
    int headers;                /* enum arc_rl_headers, always */
    bool legacy_headers;        /* false: X-RateLimit-Limit/-Remaining/-Reset too */
    bool global;                /* scope: global (gcra only; needs rate_limits.global) */
};

/* routes[].split: the upstream of each request is one of `choices`, by
 * weight; with a key the same key always gets the same choice (proxy/split.c). */
enum arc_split_key { ARC_SPLIT_RANDOM, ARC_SPLIT_CLIENT_IP, ARC_SPLIT_HEADER, ARC_SPLIT_COOKIE };
#define ARC_SPLIT_MAX_CHOICES 64
struct arc_split_choice {
    char *upstream;             /* validated to exist */
    size_t upstream_index;      /* into arc_config.upstreams */
    uint32_t weight;            /* 1, 0..10000 (0: never chosen) */
};
struct arc_split_conf {
    struct arc_split_choice *choices;
    size_t n_choices;           /* 1..ARC_SPLIT_MAX_CHOICES */
    enum arc_split_key key;     /* random */
    char *key_name;             /* header or cookie name */
};

/* routes[].mirror: fire-and-forget copies of the route's requests. */
#define ARC_MIRROR_MAX 8
/* plugins.compile_timeout's default (also `arc plugin build`'s). */
#define ARC_PLUGIN_COMPILE_TIMEOUT_MS 120000u
#define ARC_MIRROR_CMP_NAMES 32         /* compare.headers / ignore_headers entries */
enum arc_mirror_cmp_fields {
    ARC_MCF_ALL,                /* every field but the ignored ones (headers: true) */
    ARC_MCF_NONE,               /* headers: false */
    ARC_MCF_LISTED,             /* headers: [names]: only those */
};
/* routes[].mirror[].compare: the shadow's response against the primary's. */
struct arc_mirror_compare {
    enum arc_mirror_cmp_fields fields;
    char **names;               /* lower-case: the listed (LISTED) or ignored (ALL) fields */
    size_t n_names;
    bool body;                  /* true: body size and digest */
    bool log;                   /* on_diff: log (true) | count */
    uint32_t log_rate;          /* 10 (ext): diff records logged per second per shadow */
    char **body_fields;         /* ignore_body_fields: JSON member names left out */
    size_t n_body_fields;
    uint64_t max_body;          /* 1mb (ext): bodies kept for ignore_body_fields */
};
struct arc_mirror_conf {
    char *upstream;             /* validated to exist */
    size_t upstream_index;
    double sample;              /* 1.0: share of requests copied, 0..1 */
    uint64_t timeout;           /* 3s: connect to response head */
    uint64_t max_body;          /* 64kb (ext): larger request bodies are not mirrored */
    uint32_t max_in_flight;     /* 64 (ext): copies under way to this upstream, per node */
    struct arc_header_kv *set;  /* transform.headers.set */
    size_t n_set;
    char **remove;              /* transform.headers.remove (lower-case) */
    size_t n_remove;
    char *path;                 /* transform.path ("$path" = the original), NULL = same */
    struct arc_mirror_compare *compare; /* compare, NULL = off (or enabled: false) */
};

struct arc_route_conf {
    char *name;
    int32_t priority;           /* 0 */
    /* match */
    char *path;                 /* required; validated syntax */
    char **hosts;               /* exact "a.example" or "*.example"; lower-cased */
    size_t n_hosts;             /* 0 = any host */
    uint32_t methods;           /* ARC_M_* mask, 0 = any */
    /* match.headers, match.cookies and match.query: every matcher, in that
     * order, each list as written. name, value and id are heap strings
     * owned by the config (const only because the router reads them). */
    struct arc_rt_pred *preds;
    size_t n_preds;             /* <= ARC_RT_MAX_PREDS */
    char *expr;                 /* match.expr (validated), NULL = all matchers must hold */
    /* action */
    enum arc_action_kind action;
    char *upstream;             /* ACTION_UPSTREAM: name (validated to exist) */
    size_t upstream_index;      /* index into arc_config.upstreams */
    int redirect_status;        /* ACTION_REDIRECT: 301|302|303|307|308, default 302 */
    char *redirect_location;    /* may contain {name}, $path, $query */
    int respond_status;         /* ACTION_RESPOND: 200..599 (default 200; 1xx is never final) */
    char *respond_body;         /* "" if none */
    struct arc_header_kv *respond_headers;
    size_t n_respond_headers;
    struct arc_header_op *req_headers;   /* action.headers */
    size_t n_req_headers;
    struct arc_header_op *resp_headers;  /* action.response_headers */
    size_t n_resp_headers;
    /* forwarded (defaults true) */
    bool xff, xfp, via;
    /* position of the route in the file, for compile-time errors */
    char *file;
    int line, col;
    /* forwarded.trusted_proxies: peers whose X-Forwarded-* are kept and
     * appended to rather than replaced (empty = trust no one). Added after
     * the first contract; order as written. */
    struct arc_cidr *trusted_proxies;
    size_t n_trusted_proxies;
    /* action.rewrite (upstream routes): a PCRE2 pattern over the path and
     * the template replacing what it matched; NULL = none. */
    char *rewrite_pattern, *rewrite_replace;
    uint64_t timeout_ms;        /* action.timeout: whole-exchange deadline, 0 = none */
    uint64_t max_body;          /* action.max_body: request body bytes, 10mb; 0 = no limit */
    struct arc_retry_conf retry;        /* action.retry */
    struct arc_rate_limit_conf *rate_limit;     /* NULL = not limited */
    struct arc_split_conf *split;   /* routes[].split, NULL = the action's upstream */
    struct arc_mirror_conf *mirrors; /* routes[].mirror (proxy/mirror.c) */
    size_t n_mirrors;
    uint32_t *plugins;          /* routes[].plugins: indexes into arc_config.plugins, in order */
    uint32_t *plugin_roots;     /* [n_plugins]: 0 = the plugin's config, k = its
                                   route_configs[k - 1] (this reference's `config`) */
    size_t n_plugins;
};

/* plugins.wasm[] (proxy-wasm modules; see docs/plugins.md). */
struct arc_plugin_conf {
    char *name;
    char *file;                 /* .wasm path, as written */
    char *root_id;              /* NULL = name */
    uint64_t budget_ms;         /* 2ms: CPU budget of one guest call */
    uint64_t pause_timeout_ms;  /* 10s: longest a request paused by the filter waits */
    uint64_t max_memory;        /* 64mb: linear memory cap per instance */
    uint64_t max_body_buffer;   /* 1mb: body bytes the filter may hold buffered */
    uint32_t max_queues;        /* 64: shared queues per worker */
    uint32_t max_queue_items;   /* 1024: items in one queue */
    uint64_t max_queue_bytes;   /* 1mb: data in one queue */
    uint64_t max_call_body;     /* 1mb: proxy_http_call answer body kept */
    uint32_t max_root_calls;    /* 16: proxy_http_calls of root contexts outstanding
                                   per instance */
    uint32_t pool;              /* 1: instances per worker */
    bool fail_open;             /* on_error: fail_closed (false) | fail_open */
    char *config_json;          /* `config`: a string as it is, else its JSON; NULL = none */
    char **route_configs;       /* distinct routes[].plugins[].config naming this plugin */
    size_t n_route_configs;
    char *pos_file;             /* position of the entry, for load errors */
    int line, col;
};

struct arc_limits_conf {
    uint32_t max_header_bytes;  /* security.limits.max_header_bytes, 32kb */
    uint32_t max_headers;       /* 100 */
    uint32_t max_uri;           /* 8kb */
};

/* security.l7.h2_flood: HTTP/2 flood guards (RFC 9113 §10.5). A client
 * over a limit gets GOAWAY(ENHANCE_YOUR_CALM) and is disconnected. */
struct arc_h2_conf {
    uint32_t max_concurrent_streams;  /* 100 (ext) */
    uint32_t max_rst_per_sec;         /* 100: RST_STREAM received + resets we had to send */
    uint32_t max_settings_per_sec;    /* 20 */
    uint32_t max_ping_per_sec;        /* 20 */
    uint32_t max_priority_per_sec;    /* 100 (ext) */
    uint32_t max_empty_data_per_sec;  /* 100 (ext) */
    uint32_t max_continuations;       /* 8 (ext): CONTINUATION frames per header block */
};

/* security.l7 guards (src/guard/); all reloadable (read per use from the
 * snapshot). 0 turns a limit off where noted. */
struct arc_guard_conf {
    bool slowloris;                     /* slowloris.enabled, true */
    uint64_t headers_timeout;           /* slowloris.headers_timeout, 10s: a head must be
                                           complete this long after its first byte (and a
                                           new connection must send one) */
    uint32_t min_recv_rate_bps;         /* slowloris.min_recv_rate_bps, 100 (0 = off) */
    uint64_t min_recv_rate_window;      /* slowloris.min_recv_rate_window (ext), 10s */
    uint32_t max_incomplete_per_ip;     /* slowloris.max_incomplete_per_ip, 64 (0 = off) */
    bool incomplete_tarpit;             /* slowloris.over_incomplete (ext): "tarpit" (true,
                                           the default) or "close" */
    uint32_t max_connections_per_ip;    /* 0 = off */
    uint32_t max_tracked_addresses;     /* (ext) 16384: the per-address table's cells per
                                           row (rounded up to a power of two; restart-only) */
    uint32_t ipv6_prefix;               /* (ext) 64: IPv6 clients counted by this prefix */
    uint32_t handshakes_per_ip_per_sec; /* tls_flood, 0 = off */
    uint32_t max_handshakes_per_worker; /* tls_flood (ext), 256 (0 = off) */
};

/* control_plane (restart-only as a whole). Strings are held inline so the
 * section adds nothing for arc_config_free to release. */
#define ARC_CP_TOKEN_MAX 256    /* auth_token length limit */
#define ARC_CP_NODE_ID_MAX 128  /* node_id length limit */
#define ARC_CP_ETCD_MAX 8       /* config_source.etcd.endpoints */
#define ARC_CP_ETCD_PREFIX_MAX 255
struct arc_control_plane_conf {
    bool enabled;               /* false */
    struct arc_addr bind;       /* 127.0.0.1:22100; port 0 = kernel-assigned */
    bool has_token;             /* auth_token given: Bearer required from every peer */
    char auth_token[ARC_CP_TOKEN_MAX + 1]; /* "" when !has_token (loopback peers only) */
    char node_id[ARC_CP_NODE_ID_MAX + 1];  /* "" = node.id */
    uint32_t max_body;          /* 4mb (ext): larger request bodies get 413 */
    /* config_source: etcd {endpoints, prefix}: the config is the value of
     * key <prefix>config, watched (admin/etcd.c). n_etcd 0 = the file. */
    struct arc_addr etcd[ARC_CP_ETCD_MAX];
    size_t n_etcd;
    char etcd_prefix[ARC_CP_ETCD_PREFIX_MAX + 1];
};

/* logging (schema_log.c). Restart-only: whether logging is on at all,
 * output.* and writer.* (the writer thread, its file and the workers' rings
 * are set up at start); access.* and redact.* are read per exchange from
 * the exchange's snapshot, so a reload changes them. */
struct arc_logging_conf {
    bool enabled;               /* output.file or output.stdout: true */
    char *file;                 /* output.file, NULL = none */
    bool to_stdout;             /* output.stdout, false */
    uint64_t max_size;          /* output.rotation.max_size, 500mb */
    uint32_t max_files;         /* output.rotation.max_files, 30 rotated files kept */
    bool compress;              /* output.rotation.compress, true (gzip) */
    double sample;              /* access.sample, 1.0 (0..1) */
    uint8_t force_status[75];   /* access.force_on_status as a bitmap over 0..599 */
    uint64_t force_on_slow;     /* access.force_on_slow, 500ms (0 = off) */
    char **redact_headers;      /* redact.headers (lower-cased) */
    size_t n_redact_headers;
    char **redact_query;        /* redact.query_params (as written, compared exactly) */
    size_t n_redact_query;
    uint32_t ring_capacity;     /* writer.ring_capacity, 8192 records per worker (power of two) */
    uint32_t batch_bytes;       /* writer.batch_bytes, 256kb */
    uint64_t flush_interval;    /* writer.flush_interval, 50ms */
    uint64_t drop_behind;       /* writer.drop_behind (ext), 64mb: the file's pages further
                                 * behind its end leave the page cache (0 = kept) */
};

static inline bool arc_logging_forced_status(const struct arc_logging_conf *l, int status)
{
    return status >= 0 && status < 600 && (l->force_status[status >> 3] >> (status & 7)) & 1;
}

/* observability.tracing: OTLP/HTTP JSON export of sampled spans. Restart-
 * only except `sample` (the exporter thread and its queues start with Arc). */
struct arc_tracing_conf {
    bool export;                /* endpoint given */
    struct arc_addr addr;       /* its ip:port */
    char path[256];             /* its path, "/v1/traces" when none */
    char endpoint[320];         /* as written */
    uint32_t queue_capacity;    /* 4096 (ext): spans queued per worker (power of two) */
    uint64_t flush_interval;    /* 1s (ext): longest a span waits to be sent */
    uint64_t timeout;           /* 2s (ext): one export's connect + send + answer */
};

/* observability.histograms (restart-only: the per-worker rows are laid out
 * for these bounds). */
#define ARC_HIST_MAX_BUCKETS 32
struct arc_histograms_conf {
    bool enabled;                       /* true */
    uint32_t n_duration, n_size;
    uint64_t duration_ns[ARC_HIST_MAX_BUCKETS]; /* duration_buckets_ms, ascending */
    uint64_t size[ARC_HIST_MAX_BUCKETS];        /* size_buckets (bytes), ascending */
};

/* rate_limits.heavy_hitters: a count-min sketch per worker over client
 * prefixes (IPv4 /32 and /24, IPv6 /128, /ipv6_prefix and /48). */
struct arc_heavy_hitters_conf {
    bool enabled;               /* false */
    uint32_t width;             /* 2719 (e/0.001) */
    uint32_t depth;             /* 4 */
    uint32_t ipv6_prefix;       /* 64 */
    double threshold_qps;       /* 1000 */
    int action;                 /* enum arc_hh_action, none */
    int status;                 /* reject, limit: 429 */
    bool close;                 /* reject, limit: HTTP/1 connection closed after a rejection */
    /* action: limit: the limit each listed prefix gets (heavy_hitters.limit;
     * key_by, key_name, global and max_delay unused; status = the above) */
    struct arc_rate_limit_conf limit;
};
/* rate_limits.global: the Redis tier (proxy/glimit.c). Restart-only. */
enum arc_rl_fallback { ARC_RL_FB_LOCAL_SHARE, ARC_RL_FB_FAIL_OPEN, ARC_RL_FB_FAIL_CLOSED };
struct arc_rl_global_conf {
    bool enabled;               /* the section is present */
    struct arc_addr address;    /* redis.address, required */
    char password[256];         /* redis.password, "" = no AUTH */
    uint32_t db;                /* redis.db, 0 */
    uint64_t timeout;           /* redis.timeout ms, 2 */
    uint32_t lease;             /* redis.lease tokens, 64 */
    uint64_t circuit_open;      /* redis.circuit_open ms, 500 */
    int fallback;               /* enum arc_rl_fallback, local_share */
    uint32_t nodes;             /* nodes sharing the limit (local_share = qps / nodes), 1 */
};

/* What happens to a request from a heavy hitter (a prefix at or above
 * threshold_qps summed over the workers, as last measured). */
enum arc_hh_action { ARC_HH_NONE, ARC_HH_REJECT, ARC_HH_LIMIT };

/* security.xdp: the XDP filter in front of the TCP stack (src/xdp). Map
 * contents (lists, rates, auto_block) follow reloads; enabled, interface,
 * mode and max_sources are restart-only (they decide what is attached). */
enum arc_xdp_mode { ARC_XDP_AUTO, ARC_XDP_NATIVE, ARC_XDP_GENERIC };
struct arc_xdp_conf {
    bool enabled;               /* false */
    char *interface;            /* required when enabled */
    int mode;                   /* enum arc_xdp_mode, auto */
    bool required;              /* false: without XDP Arc runs on, saying why */
    struct arc_cidr *blacklist, *whitelist;     /* whitelist wins */
    size_t n_blacklist, n_whitelist;
    bool syn_enabled;           /* syn_flood.enabled, true */
    uint32_t syn_pps_source;    /* syn_flood.pps_per_source, 50 */
    uint32_t syn_pps_global;    /* syn_flood.global_pps, 20000 */
    bool ab_enabled;            /* auto_block.enabled, false */
    uint64_t ab_threshold;      /* auto_block.threshold: packets per window, 100000 */
    uint64_t ab_window;         /* auto_block.window (ms), 10s */
    uint64_t ab_ttl;            /* auto_block.ttl (ms), 5m */
    uint32_t max_sources;       /* (ext) per-source entries (LRU), 65536 */
    bool block_heavy_hitters;   /* (ext) rate_limits.heavy_hitters sources become blocks, false */
    uint64_t heavy_hitter_ttl;  /* (ext) heavy_hitter_ttl (ms), 5m */
    char *pin_path;             /* (ext) bpffs directory: link and maps pinned, kept
                                   attached across restarts; NULL = detach on exit */
};

struct arc_config {
    char *source;               /* file path or "<embedded>" */
    char *canonical_json;       /* sorted keys, compact; owned (rules: config/canon.c) */
    char fingerprint[65];       /* lowercase hex SHA-256 of canonical_json */

    struct arc_node_conf node;
    struct arc_guard_conf guard;     /* security.l7 (except h2_flood) */
    struct arc_uring_conf uring;
    struct arc_listener_conf *listeners;
    size_t n_listeners;         /* >= 1 */
    struct arc_upstream_conf *upstreams;
    size_t n_upstreams;
    struct arc_route_conf *routes;
    size_t n_routes;
    struct arc_limits_conf limits;
    struct arc_h2_conf h2;
    struct arc_addr metrics_bind; /* observability.metrics_bind, 127.0.0.1:9090 */
    bool metrics_enabled;       /* observability.metrics_enabled, true */
    struct arc_histograms_conf histograms;
    uint32_t status_series;     /* observability.max_status_series_per_route, 64 */
    struct arc_control_plane_conf control_plane;
    struct arc_logging_conf logging;
    double tracing_sample;      /* observability.tracing.sample, 0.01 */
    struct arc_tracing_conf tracing;
    struct arc_plugin_conf *plugins;
    size_t n_plugins;
    char *plugin_cache_dir;     /* plugins.cache_dir (ext): compiled modules, by SHA-256 */
    uint64_t plugin_compile_timeout_ms; /* plugins.compile_timeout: per tool run (wasm2c, cc) */
    struct arc_heavy_hitters_conf heavy_hitters;
    struct arc_xdp_conf xdp;
    struct arc_rl_global_conf rl_global;
};

/**
 * Loads and validates a config file; the format is chosen by extension
 * (.yaml/.yml, .json, .toml). On success returns 0 and *out (owned by caller).
 * On failure returns -1, leaves *out NULL and appends every problem to errs.
 */
int arc_config_load_file(const char *path, struct arc_config **out,
                         struct arc_config_errors *errs);

/**
 * Same for an in-memory document. `name` is used in error messages;
 * `format` is "json", "toml" or "yaml" (anything else is read as YAML).
 */
int arc_config_load_string(const char *text, size_t len, const char *name,
                           const char *format, struct arc_config **out,
                           struct arc_config_errors *errs);

void arc_config_free(struct arc_config *cfg);

/**
 * The fields that differ between a running config and a new one and that
 * need a restart (listeners and their socket settings, node.workers,
 * io_uring sizing, the admin listener, the control_plane section): returns
 * how many, and writes their names, comma-separated, to out (truncated to
 * len; may be NULL).
 */
size_t arc_config_restart_diff(const struct arc_config *old, const struct arc_config *new,
                               char *out, size_t len);

/* Parses "250ms", "30s", "2m", "1h" (also plain integer = seconds? no: error).
 * Returns 0 and ms, or -1. Exposed for tests. */
int arc_config_parse_duration(const char *s, uint64_t *ms);
/* Parses "512", "64kb", "10mb", "1gb" (1024-based). Returns 0 or -1. */
int arc_config_parse_size(const char *s, uint64_t *bytes);
/* Parses "1.2.3.4:80", "[::1]:80", "localhost:80" is NOT accepted (IP only). */
int arc_config_parse_addr(const char *s, struct arc_addr *out);
/* Parses "10.0.0.0/8", "2001:db8::/32"; a bare IP means /32 or /128. Host
 * bits must be zero ("10.0.0.1/8" is an error). Returns 0 or -1. */
int arc_config_parse_cidr(const char *s, struct arc_cidr *out);
/* True if `sa` (AF_INET or AF_INET6) lies inside `c`. An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is also tested against IPv4 prefixes. */
bool arc_config_cidr_contains(const struct arc_cidr *c, const struct sockaddr *sa);

#endif
