/*
 * Session-ticket key store shared by every worker's server contexts.
 *
 * Readers (a handshake on any worker) must not contend with each other or
 * wait for the rotating thread, and the key set is tiny (at most 4 × 80
 * bytes), so it lives inline as atomic words under a sequence lock: a
 * reader copies the words and retries if the sequence number was odd or
 * changed meanwhile (Boehm, "Can seqlocks get along with programming
 * language memory models?", 2012 — relaxed atomic loads plus an acquire
 * fence, so there is no data race in the C11 sense). Readers never write
 * shared memory, so handshakes on different cores do not bounce a cache
 * line, and there is nothing to reclaim: an immutable set behind an atomic
 * pointer would need a grace period before the old set could be freed.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_int.h"

#define KEY_WORDS (sizeof(struct arc_tls_ticket_key) / sizeof(uint64_t))
#define N_WORDS (ARC_TLS_TICKET_KEYS_MAX * KEY_WORDS)
_Static_assert(sizeof(struct arc_tls_ticket_key) % sizeof(uint64_t) == 0, "key size");

struct arc_tls_ticket_keys {
    _Atomic uint32_t refs;
    unsigned keep;                  /* previous keys kept, 0..MAX-1 */
    pthread_mutex_t wlock;          /* one writer at a time */
    _Atomic uint64_t seq;           /* odd while a writer is in the middle */
    _Atomic uint64_t generation;
    _Atomic uint64_t n;             /* keys in use */
    _Atomic uint64_t words[ARC_TLS_TICKET_KEYS_MAX * KEY_WORDS];
};

static int fresh_key(struct arc_tls_ticket_key *k)
{
    return RAND_bytes((unsigned char *)k, (int)sizeof(*k)) == 1 ? 0 : -EIO;
}

/* Caller holds wlock. */
static void publish(struct arc_tls_ticket_keys *k, const struct arc_tls_keyset *set)
{
    uint64_t w[ARC_TLS_TICKET_KEYS_MAX * KEY_WORDS];
    memcpy(w, set->k, sizeof(w));
    uint64_t s = atomic_load_explicit(&k->seq, memory_order_relaxed);
    atomic_store_explicit(&k->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&k->n, set->n, memory_order_relaxed);
    for (size_t i = 0; i < N_WORDS; i++)
        atomic_store_explicit(&k->words[i], w[i], memory_order_relaxed);
    atomic_store_explicit(&k->seq, s + 2, memory_order_release);
    OPENSSL_cleanse(w, sizeof(w));
}

void arc_tls__keys_read(const struct arc_tls_ticket_keys *k, struct arc_tls_keyset *out)
{
    uint64_t w[ARC_TLS_TICKET_KEYS_MAX * KEY_WORDS];
    struct arc_tls_ticket_keys *m = (struct arc_tls_ticket_keys *)k; /* atomics are read-only here */
    for (;;) {
        uint64_t s1 = atomic_load_explicit(&m->seq, memory_order_acquire);
        if (s1 & 1)
            continue;           /* a rotation is being written: microseconds */
        uint64_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
        for (size_t i = 0; i < N_WORDS; i++)
            w[i] = atomic_load_explicit(&m->words[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&m->seq, memory_order_relaxed) == s1) {
            out->n = n <= ARC_TLS_TICKET_KEYS_MAX ? (size_t)n : ARC_TLS_TICKET_KEYS_MAX;
            break;
        }
    }
    memcpy(out->k, w, sizeof(w));
    OPENSSL_cleanse(w, sizeof(w));
}

struct arc_tls_ticket_keys *arc_tls_ticket_keys_new(unsigned keep_previous)
{
    if (keep_previous >= ARC_TLS_TICKET_KEYS_MAX)
        keep_previous = ARC_TLS_TICKET_KEYS_MAX - 1;
    struct arc_tls_ticket_keys *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    atomic_init(&k->refs, 1);
    k->keep = keep_previous;
    pthread_mutex_init(&k->wlock, NULL);
    struct arc_tls_keyset set = { .n = 1 };
    if (fresh_key(&set.k[0]) < 0) {
        pthread_mutex_destroy(&k->wlock);
        free(k);
        return NULL;
    }
    pthread_mutex_lock(&k->wlock);
    publish(k, &set);
    pthread_mutex_unlock(&k->wlock);
    OPENSSL_cleanse(&set, sizeof(set));
    return k;
}

void arc_tls_ticket_keys_ref(struct arc_tls_ticket_keys *k)
{
    atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
}

void arc_tls_ticket_keys_unref(struct arc_tls_ticket_keys *k)
{
    if (!k || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&k->wlock);
    OPENSSL_cleanse((void *)k->words, sizeof(k->words));
    free(k);
}

int arc_tls_ticket_keys_rotate(struct arc_tls_ticket_keys *k)
{
    struct arc_tls_keyset cur, next = { 0 };
    if (fresh_key(&next.k[0]) < 0)
        return -EIO;
    pthread_mutex_lock(&k->wlock);
    arc_tls__keys_read(k, &cur);
    next.n = 1;
    for (size_t i = 0; i < cur.n && next.n < 1 + (size_t)k->keep; i++)
        next.k[next.n++] = cur.k[i];
    publish(k, &next);
    atomic_fetch_add_explicit(&k->generation, 1, memory_order_relaxed);
    pthread_mutex_unlock(&k->wlock);
    OPENSSL_cleanse(&cur, sizeof(cur));
    OPENSSL_cleanse(&next, sizeof(next));
    return 0;
}

uint64_t arc_tls_ticket_keys_generation(const struct arc_tls_ticket_keys *k)
{
    return atomic_load_explicit(&((struct arc_tls_ticket_keys *)k)->generation,
                                memory_order_relaxed);
}
