/**
 * Admin module internals shared by its files: the control loop's state
 * (admin.c), reloads (reload.c), the control-plane API server (ctlapi.c)
 * and its pure protocol helpers (ctlproto.c), and the file watcher
 * (watch.c). Only src/admin and its unit tests include this header.
 * Thread: everything here runs on the control thread, except the pure
 * helpers (any thread).
 */
#ifndef ARC_ADMIN_ADMIN_INT_H
#define ARC_ADMIN_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "admin/admin.h"
#include "config/config.h"
#include "core/sbuf.h"
#include "http1/http1.h"
#include "core/common.h"
#include "loop/ring.h"
#include "obs/metrics.h"
#include "upstream/dns.h"

/* user_data of the loop's own operations. Connections use their (8-byte
 * aligned) address with the operation in the low three bits; no heap
 * address is this small, so the two never collide. */
enum {
    UD_ACCEPT = 1, UD_SIGNAL, UD_TICK, UD_ACCEPT_RETRY, UD_WATCH,
    UD_CTL_ACCEPT, UD_CTL_ACCEPT_RETRY, UD_ETCD_CONNECT, UD_ETCD_SEND, UD_ETCD_RECV,
    UD_DNS_FIRST, UD_DNS_LAST = UD_DNS_FIRST + ARC_DNS_SLOTS - 1, UD__LAST
};
/* Operations of admin connections (admin.c) and control-plane ones (ctlapi.c). */
enum { AOP_RECV = 1, AOP_SEND = 2, AOP_CLOSE = 3, COP_RECV = 4, COP_SEND = 5, COP_CLOSE = 6 };

static inline uint64_t arc_admin__ud(const void *conn, int op)
{
    return (uint64_t)(uintptr_t)conn | (uint64_t)op;
}

/* After a failed accept (EMFILE, ENFILE, ENOBUFS, ENOMEM) the multishot
 * accept has ended. Re-arming at once fails again at once while a connection
 * waits in the backlog, so the loop would spin; the retry waits this long. */
#define ARC_ADMIN_ACCEPT_RETRY_MS 50

/* ------------------------------------------------------------ watch.c */

/* What a batch of file events touched. */
enum { ARC_WATCH_CONFIG = 1u, ARC_WATCH_REF = 2u };

/* Debounce: a reload starts this long after the last event of a burst
 * (an editor's save or a certificate rotation is several events). */
#define ARC_WATCH_DEBOUNCE_MS 200

struct arc_watch_file {
    char *dir;                  /* as inotify_add_watch was given it ("." for a bare name) */
    char *name;                 /* the entry in dir */
    int wd;                     /* -1: adding the watch failed */
    unsigned kind;              /* ARC_WATCH_CONFIG or _REF */
};

/**
 * Watches the directories holding the config file and every file the
 * running config names (TLS certificates, keys, CA bundles), and matches
 * entry names, so that a write in place, an editor's rename into place, a
 * delete-and-recreate and a symlink swap (the resolved path is watched too)
 * are all seen. Directories, not files: a watch on a file follows the
 * inode an editor's rename just replaced.
 */
struct arc_watch {
    int fd;                     /* inotify descriptor (non-blocking), -1 if none */
    struct arc_watch_file *files;
    size_t n_files;
    unsigned pending;           /* ARC_WATCH_* seen since the last reload */
    uint64_t due;               /* arc_now_ms() at which the pending reload starts */
    char seen[256];             /* names seen, for the log line ("a.yaml, cert.pem") */
};

/* 0 or -errno (inotify unavailable: then nothing is watched). */
int arc_admin__watch_init(struct arc_watch *w);
/* Watches what `cfg` (the running config, read from `config_path`) names,
 * dropping watches no longer needed. Logs directories that cannot be
 * watched. `config_path` NULL: nothing is watched. */
void arc_admin__watch_set(struct arc_watch *w, const char *config_path,
                          const struct arc_config *cfg);
/* Reads every queued event (non-blocking); an event on a watched name
 * marks it pending and moves `due` to now + ARC_WATCH_DEBOUNCE_MS.
 * Returns true if any did. */
bool arc_admin__watch_read(struct arc_watch *w, uint64_t now);
/* Forgets pending events (a reload that read the files has just run). */
void arc_admin__watch_clear(struct arc_watch *w);
void arc_admin__watch_dispose(struct arc_watch *w);
/* Pure: splits `path` into the directory to watch and the entry name
 * ("a/b/c.pem" -> "a/b", "c.pem"; "c.pem" -> ".", "c.pem"; "/c" -> "/",
 * "c"). -1 if a part does not fit or the name is empty ("a/"). */
int arc_admin__split_path(const char *path, char *dir, size_t dirlen, char *name,
                          size_t namelen);

/* ------------------------------------------------------------ reload.c */

struct arc_ctl_loop;

/* The outcome of one config submitted through the API (validated, or
 * validated and applied). */
struct arc_admin_outcome {
    int result;                     /* ARC_RELOAD_OK, _ERROR or _REFUSED */
    struct arc_config_errors errs;  /* _ERROR: every problem (dispose it) */
    char fields[4096];              /* restart-only fields changed, ", "-separated */
    size_t n_fields;
    char fingerprint[65];           /* the submitted config's (when it loaded) */
    uint64_t generation;            /* applied: the generation now running */
    bool unchanged;                 /* same fingerprint as the running config */
};

/**
 * Reloads from the config's source like arc_control_reload; with
 * `skip_unchanged`, a config whose fingerprint equals the running one is
 * not published (logged, not counted): a file event that changed nothing
 * the config says (an editor saving the same text, a touch) is no reload.
 * `keep` (may be NULL) receives the errors of a config that did not load
 * (the caller disposes them).
 */
int arc_admin__reload_source(struct arc_control *ctl, const char *trigger, bool skip_unchanged,
                             struct arc_config_errors *keep);

/**
 * Discovery found other endpoints (config/discovered.h): the running config
 * is compiled again from its canonical text, which picks them up, and
 * published; workers adopt it like a reload and keep the pools and health
 * of endpoints that remain. Logged, not counted as a reload. 0 or -1.
 */
int arc_admin__republish(struct arc_control *ctl, const char *trigger);

/**
 * Loads `text` (`format`: "json", "yaml" or "toml") and compiles it. With
 * `apply`, a config that loads and changes no restart-only field is
 * published like a reload (logged with `trigger`, counted); without, only
 * the outcome is reported (nothing is logged or counted; a validation
 * still compiles, so it reads the certificate files the config names).
 */
void arc_admin__submit(struct arc_control *ctl, const char *text, size_t len, const char *format,
                       const char *name, const char *trigger, bool apply,
                       struct arc_admin_outcome *out);

/**
 * A reload that reads the config file (SIGHUP, POST /v1/reload). It sees
 * every change made before it, so the file events queued until now are
 * read and dropped: they would only repeat it. Without `keep` (SIGHUP:
 * nobody waits for the outcome) plugin modules missing from the cache are
 * compiled on a thread first and ARC_RELOAD_NONE is returned when that
 * happened; with `keep` it waits for a compile running, then compiles on
 * the control thread. (admin.c)
 */
int arc_admin__reload_file(struct arc_ctl_loop *cs, const char *trigger,
                           struct arc_config_errors *keep);

/* "ok", "error", "refused", "none" (the metrics' result label). */
const char *arc_admin__result_name(int result);

/* ------------------------------------------------------------ status.c */

/* The names /metrics labels rows with, made from a snapshot (its routes,
 * upstreams, endpoints and listeners). Borrowed from `s`: valid while it is. */
struct arc_admin_names {
    struct arc_m_names m;
    uint32_t *ep_ids, *ep_up;
    const char **ep_names, **listener_names;
};
void arc_admin__names(struct arc_admin_names *n, const struct arc_snapshot *s);
void arc_admin__names_dispose(struct arc_admin_names *n);

/* The dashboard's history: a sample of the shards every SAMPLE_MS, the
 * last SAMPLES of them (the "last minutes" its charts show). */
#define ARC_ADMIN_SAMPLE_MS 5000
#define ARC_ADMIN_SAMPLES 60
struct arc_admin_history;
struct arc_admin_history *arc_admin__history_new(void);
void arc_admin__history_free(struct arc_admin_history *h);
/* Takes a sample when one is due (called on every control-loop tick). */
void arc_admin__history_tick(struct arc_admin_history *h, const struct arc_control *ctl,
                             uint64_t now);
/* The /status.json document (malloc'd text, the caller frees it). */
char *arc_admin__status_json(struct arc_admin_history *h, const struct arc_control *ctl,
                             uint64_t now);
/* The dashboard page (dashboard.c): NUL-terminated HTML, static. */
extern const char arc_admin__dashboard_html[];

/* ------------------------------------------------------------ ctlapi.c */

struct ctl_conn;

/* The control-plane server's part of the loop state. */
struct arc_ctl_server {
    struct ctl_conn **conns;        /* open connections (timeouts, shutdown) */
    size_t n_conns, cap_conns;
    size_t n_parked;                /* long polls waiting for a new fingerprint */
    int accept_error;               /* last accept error (-errno) of this episode, 0 if none */
    struct __kernel_timespec accept_retry;
    uint64_t started_ms;            /* arc_now_ms() at start, for uptime */
};

/* The control loop's state (admin.c owns it; the other files use it). */
struct arc_ctl_loop {
    struct arc_control *ctl;
    struct io_uring ring;
    struct signalfd_siginfo si;
    struct __kernel_timespec tick;
    uint64_t next_ticket_rotation;   /* arc_now_ms() of the next ticket key rotation */
    struct __kernel_timespec accept_retry;
    int accept_error;               /* admin listener: last accept error of this episode */
    bool draining;
    uint32_t live_before;           /* arc_snapshot_live() at the last tick */
    size_t open_conns;
    struct admin_conn **conns;       /* open admin connections, for timeouts */
    size_t n_conns, cap_conns;
    struct arc_watch watch;
    const struct arc_snapshot *seen_snap; /* the running snapshot the watches were set for */
    char seen_fp[65];               /* the fingerprint long polls last saw */
    struct arc_ctl_server srv;
    struct arc_etcd *etcd;          /* config_source etcd (etcd.c), or NULL */
    struct arc_dns *dns;            /* discovery: dns (upstream/dns.c), or NULL */
    struct arc_admin_history *history; /* the dashboard's samples (status.c) */
    /* A reload waiting for plugin modules compiling on a thread (admin.c's
     * reload_bg): run again from the config's source when it ends. */
    bool compile_pending;
    bool compile_skip;              /* skip_unchanged of every request waiting */
    char compile_trigger[160];      /* the newest request's */
    bool compile_etcd;              /* an etcd value waits for the compile: applied
                                       (the newest value) when it ends */
};
/* A plugin compile for a reload is running: wait for it (blocking) and run
 * the reload waiting on it, so that a synchronous reload or submit after it
 * applies in order and never compiles the same module at once. */
void arc_admin__compile_wait(struct arc_ctl_loop *cs);

void arc_admin__ctl_start(struct arc_ctl_loop *cs);
void arc_admin__ctl_on_accept(struct arc_ctl_loop *cs, const struct io_uring_cqe *cqe, uint64_t now);
void arc_admin__ctl_accept_retry(struct arc_ctl_loop *cs);
void arc_admin__ctl_on_cqe(struct arc_ctl_loop *cs, struct ctl_conn *c, int op, int res,
                           uint64_t now);
/* Timeouts and long polls that reached their deadline. */
void arc_admin__ctl_tick(struct arc_ctl_loop *cs, uint64_t now);
/* The running fingerprint changed: parked long polls are answered. */
void arc_admin__ctl_config_changed(struct arc_ctl_loop *cs);
/* A drain began: parked long polls (and requests waiting for a plugin
 * compile) are answered 503. */
void arc_admin__ctl_drain(struct arc_ctl_loop *cs);
/* A plugin compile ended (joined; its failures still known): requests
 * waiting for it run again. */
void arc_admin__ctl_compiled(struct arc_ctl_loop *cs);
/* Loop exit: closes every connection (their operations die with the ring). */
void arc_admin__ctl_dispose(struct arc_ctl_loop *cs);

/* ------------------------------------------------------------ xdpapi.c */

struct json_t;
/* /v1/status's "xdp" object: state, interface, mode, why. */
struct json_t *arc_admin__xdp_status(const struct arc_control *ctl);
/* The arc_xdp_* families of /metrics. */
void arc_admin__xdp_metrics(struct arc_sbuf *m, const struct arc_control *ctl);
/* Every control tick: expired blocks swept, heavy hitters pushed (once a second). */
void arc_admin__xdp_tick(struct arc_control *ctl, uint64_t now);
/* /v1/xdp/blocks: GET lists, POST {"cidr", "ttl"} adds, DELETE {"cidr"}
 * removes. Returns the status; *doc the answer. */
int arc_admin__xdp_blocks(struct arc_control *ctl, const char *method, const char *body,
                          size_t len, const char *peer, struct json_t **doc);
/* /v1/xdp/stats: state and per-reason counters. */
struct json_t *arc_admin__xdp_stats(const struct arc_control *ctl);

/* ------------------------------------------------------------ etcd.c */

/* A value read from etcd (text owned, NUL-terminated). */
struct arc_etcd_value {
    char *text;
    size_t len;
    int64_t mod_revision;
};

/* One watch response line. */
struct arc_etcd_event {
    int64_t revision;               /* the response header's */
    bool created;                   /* the watch's first response */
    bool has_value;                 /* the key was put (value holds the last put) */
    bool deleted;                   /* the last event deleted the key */
    struct arc_etcd_value value;
};

/* An HTTP/1.1 response read incrementally: head, then the body decoded
 * (Content-Length, chunked or until close) into `body`. */
struct arc_etcd_reader {
    struct arc_sbuf raw;            /* bytes until the head is complete */
    struct arc_sbuf body;           /* decoded body bytes (from `off` not consumed yet) */
    size_t off;
    struct arc_h1_chunked chunk;
    uint64_t left;                  /* Content-Length bytes to come */
    int status;
    int framing;                    /* enum arc_h1_body */
    bool head_done, done;
};

enum arc_etcd_state { ES_WAIT, ES_CONNECTING, ES_RANGE, ES_WATCH };

struct arc_etcd {
    struct arc_addr eps[ARC_CP_ETCD_MAX];
    size_t n_eps, ep;               /* endpoints; the one in use (rotates on failure) */
    char *key;                      /* <prefix>config */
    int fd;                         /* -1: none */
    enum arc_etcd_state state;
    unsigned inflight;              /* ring operations on fd */
    bool closing;                   /* fd closes when inflight reaches 0 */
    bool up;                        /* last range succeeded and the watch runs */
    uint64_t retry_at, deadline;    /* arc_now_ms(); deadline 0 = none */
    unsigned backoff_ms;
    int64_t revision;               /* highest revision seen */
    struct arc_sbuf out;            /* request being sent */
    size_t out_off;
    struct arc_etcd_reader rd;
    char rbuf[16384];
    char *value;                    /* the last value read (applied or refused) */
    size_t value_len;
    char last_error[200];
};

/* Pure helpers (etcdproto.c, unit-tested). Strings returned are malloc'd. */
struct json_t;
/* An int64 field of a JSON object, as etcd writes them ("42"), else 0. */
int64_t arc_etcd__int64(const struct json_t *o, const char *name);
char *arc_etcd__b64(const void *p, size_t n);
char *arc_etcd__unb64(const char *s, size_t n, size_t *out_len);
char *arc_etcd__key(const char *prefix);
char *arc_etcd__range_body(const char *key);
char *arc_etcd__watch_body(const char *key, int64_t start_revision);
char *arc_etcd__put_body(const char *key, const char *value, size_t len);
/* 1: the key has a value (*out, free out->text); 0: not set; -1: bad answer. */
int arc_etcd__parse_range(const char *body, size_t len, struct arc_etcd_value *out,
                          int64_t *revision, char *err, size_t errlen);
/* 0 (free ev->value.text) or -1 (an error, or the watch was canceled). */
int arc_etcd__parse_watch(const char *line, size_t len, struct arc_etcd_event *ev,
                          char *err, size_t errlen);
void arc_etcd__reader_init(struct arc_etcd_reader *r);
void arc_etcd__reader_dispose(struct arc_etcd_reader *r);
/* 1: the response is complete, 0: more to come, -1: malformed (err). */
int arc_etcd__reader_feed(struct arc_etcd_reader *r, const char *p, size_t n, char *err,
                          size_t errlen);
/* The next complete body line (with its '\n', *line into the buffer, valid
 * until the next feed or compact), or 0. */
size_t arc_etcd__reader_line(struct arc_etcd_reader *r, char **line);
void arc_etcd__reader_compact(struct arc_etcd_reader *r);

/* Loop side. */
int arc_admin__etcd_start(struct arc_ctl_loop *cs, const struct arc_control_plane_conf *cp);
void arc_admin__etcd_on_cqe(struct arc_ctl_loop *cs, uint64_t ud, int res, uint64_t now);
void arc_admin__etcd_tick(struct arc_ctl_loop *cs, uint64_t now);
void arc_admin__etcd_dispose(struct arc_ctl_loop *cs);
const char *arc_admin__etcd_state(const struct arc_etcd *e);
/* Compiles and applies the last value read from etcd (admin.c): after a
 * new value, or when a reload is asked for (SIGHUP, a watched certificate
 * changed) while etcd is the source. */
/* The same for an etcd value nobody waits on (a watch event, a file or
 * SIGHUP): plugin modules missing from the cache are compiled on a thread
 * first (cs->compile_etcd), then the newest value is applied. */
void arc_admin__etcd_apply_bg(struct arc_ctl_loop *cs, const char *trigger);
int arc_admin__etcd_apply(struct arc_ctl_loop *cs, const char *trigger,
                          struct arc_config_errors *keep);

/* ------------------------------------------------------------ ctlproto.c */

/**
 * Constant-time equality of a presented secret and the expected one, in
 * time independent of where they differ and of either length: both are
 * hashed (SHA-256) and the digests compared with CRYPTO_memcmp, so even a
 * length mismatch costs the same as a match.
 */
bool arc_admin__token_eq(const char *given, size_t given_len, const char *want, size_t want_len);

/* The token of an `Authorization: Bearer <token>` value (scheme
 * case-insensitive, RFC 9110 §11.4, RFC 6750 §2.1); false for another
 * scheme or an empty token. */
bool arc_admin__bearer(struct arc_str value, struct arc_str *token);

/* Loopback peer: 127.0.0.0/8, ::1, or an IPv4-mapped 127.x address. */
bool arc_admin__is_loopback(const struct sockaddr *sa);

/* Long-poll parameters. */
#define ARC_LONGPOLL_DEFAULT_MS 30000u
#define ARC_LONGPOLL_MAX_MS 300000u
struct arc_longpoll_q {
    bool has_since;
    char since[65];                 /* lower-case hex fingerprint */
    uint64_t timeout_ms;            /* default 30s; at most 300s (longer is cut to it) */
};

/**
 * Parses the query of GET /v1/config/longpoll: `since=<fingerprint>` (64
 * hex digits, either case) and `timeout=<duration>` ("30s", "500ms", "2m";
 * a bare number is seconds), both optional, each at most once, values
 * percent-decoded; other parameters are ignored. Returns 0, or -1 with a
 * static reason in *err.
 */
int arc_admin__longpoll_query(struct arc_str query, struct arc_longpoll_q *out, const char **err);

/* Does an If-None-Match value match the entity tag "<fp>"? Handles lists,
 * weak tags (W/ compares weakly, RFC 9110 §13.1.2) and "*". */
bool arc_admin__etag_match(struct arc_str if_none_match, const char *fp);

/**
 * The config format of a request body from its Content-Type (parameters
 * ignored): "json", "yaml" or "toml"; with no Content-Type (or
 * application/octet-stream) a body starting with '{' is JSON, else YAML.
 * NULL: a media type that is none of these (415).
 */
const char *arc_admin__body_format(const struct arc_str *content_type, const char *body,
                                   size_t len);

#endif
