/*
 * Shared inside src/tls/: the context structures and the helpers that
 * connect the key store, the contexts and the connections.
 */
#ifndef ARC_TLS_TLS_INT_H
#define ARC_TLS_TLS_INT_H

#include <stdatomic.h>
#include <openssl/ssl.h>
#include <pthread.h>

#include "tls/tls.h"

struct arc_tls_ticket_key {
    unsigned char name[16];
    unsigned char aes[32];      /* AES-256-CBC */
    unsigned char hmac[32];     /* HMAC-SHA256 */
};

/* A consistent copy of the store's keys, newest first. */
struct arc_tls_keyset {
    size_t n;
    struct arc_tls_ticket_key k[ARC_TLS_TICKET_KEYS_MAX];
};

void arc_tls__keys_read(const struct arc_tls_ticket_keys *k, struct arc_tls_keyset *out);

struct arc_tls_srv_cert {
    SSL_CTX *ctx;
    char *sni;                  /* NULL for a default without sni */
    bool wildcard;              /* sni is "*.suffix" */
    time_t not_after;
};

struct arc_tls_server {
    _Atomic uint32_t refs;      /* snapshot + live connections (arc_tls_server_ref) */
    struct arc_tls_srv_cert *certs;
    size_t n_certs;
    unsigned char *alpn;        /* wire format: length-prefixed names */
    size_t alpn_len;
    struct arc_tls_ticket_keys *keys;   /* NULL: OpenSSL's own per-context keys */
};

struct arc_tls_session_slot {
    char *key;
    SSL_SESSION *sess;
    uint64_t used;              /* for evicting the least recently stored */
};

struct arc_tls_client {
    SSL_CTX *ctx;
    char *server_name;          /* NULL if none */
    bool server_name_is_ip;
    bool insecure;
    pthread_mutex_t lock;       /* guards the session cache */
    struct arc_tls_session_slot *slots;
    size_t n_slots, cap_slots;
    uint64_t clock;
};

/* Client session cache, called from conn.c. */
SSL_SESSION *arc_tls__client_session_get(struct arc_tls_client *c, const char *key);
void arc_tls__client_session_put(struct arc_tls_client *c, const char *key, SSL_SESSION *s);

/* Empties this thread's OpenSSL error queue into buf ("" if empty); the
 * first error's reason code goes to *reason when reason != NULL. */
void arc_tls__drain_errors(char *buf, size_t len, int *reason);

#endif
