/*
 * routes[].mirror[].compare (mirror_cmp.c), shared by the worker side and
 * the mirror thread of mirror.c.
 *
 * A response is reduced to a bounded summary (struct arc_mc_sum): its
 * status, a 64-bit hash per field name (values of repeated fields folded in
 * order), and its body's size and 64-bit digest. Nothing of the body is
 * kept. The worker builds the primary's summary while the response flows to
 * the client; the mirror thread builds the shadow's from the copy's answer
 * and compares the two (arc_mc__compare). With ignore_body_fields, both
 * bodies are also kept up to compare.max_body and, when both are JSON,
 * compared as JSON values without those members (on the mirror thread).
 *
 * Thread: the summary builders run on whichever thread owns the summary;
 * nothing here is shared.
 */
#ifndef ARC_PROXY_MIRROR_INT_H
#define ARC_PROXY_MIRROR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/common.h"
#include "http1/http1.h"

/* A streaming 64-bit digest (not cryptographic: it finds differences, it
 * does not resist a shadow forging equal digests). The same bytes give the
 * same digest however they are split. */
struct arc_mc_digest {
    uint64_t h, len, carry;
    uint8_t nc;                         /* bytes in carry */
};
void arc_mc__dg_init(struct arc_mc_digest *d);
void arc_mc__dg_update(struct arc_mc_digest *d, const void *p, size_t n);
uint64_t arc_mc__dg_final(const struct arc_mc_digest *d);

/* Distinct field names kept per summary; fields of further names are
 * folded into one order-independent hash (over_h). */
#define ARC_MC_FIELDS 32
struct arc_mc_field {
    uint64_t name_h, val_h;
    char name[32];                      /* lower case, truncated (for the diff record) */
};
struct arc_mc_sum {
    int status;
    bool head;                          /* from an upstream response head (false: Arc's
                                           own answer: only the status is compared) */
    bool complete;                      /* the whole response was seen */
    bool over;                          /* more than ARC_MC_FIELDS names */
    uint8_t n_f;
    uint64_t over_h;
    struct arc_mc_digest body;
    struct arc_mc_field f[ARC_MC_FIELDS];
};
/* The head of a response: resets the summary. */
void arc_mc__sum_head(struct arc_mc_sum *s, int status, const struct arc_h1_header *h, size_t n);
/* Lower-case hash of a field name (the filters' names use it too). */
uint64_t arc_mc__name_hash(const char *p, size_t n);

/* Everything the mirror thread needs to compare one copy's answer: owned
 * by the copy's job (no pointer into a snapshot). */
struct arc_mc_job {
    struct arc_mc_sum primary;
    enum arc_mirror_cmp_fields fields;
    uint8_t n_names;
    uint64_t names[ARC_MIRROR_CMP_NAMES];
    bool body, log, is_head;
    uint32_t log_rate;
    struct arc_h1_limits lim;           /* for the shadow's head */
    char route[64], rid[65], method[24], path[200];
    /* ignore_body_fields: the names (NUL-separated, owned) and the
     * primary's body (owned; NULL when over max_body) */
    char *bfields;
    size_t n_bfields;
    uint64_t max_body;
    char *pbody;
    size_t pbody_len;
};
void arc_mc__job_free(struct arc_mc_job *j);

/* Reads the shadow's response (mirror thread). */
struct arc_mc_reader {
    char *hb;                           /* head bytes until the head is parsed */
    size_t hlen, hcap;
    bool head_done;
    enum arc_h1_body framing;
    uint64_t left;
    struct arc_h1_chunked ck;
    struct arc_mc_sum sum;
    char *jb;                           /* ignore_body_fields: the body, up to max_body */
    size_t jlen, jcap;
    bool jover;                         /* it was larger */
};
/* Feeds received bytes: 1 = the response is complete (or, with body: false,
 * its head is), 0 = more wanted, -1 = malformed or over the head limits. */
int arc_mc__feed(struct arc_mc_reader *r, const struct arc_mc_job *j, const char *p, size_t n);
/* The shadow closed: 1 if that completed the response (close-delimited
 * body), else -1. */
int arc_mc__eof(struct arc_mc_reader *r, const struct arc_mc_job *j);
void arc_mc__reader_free(struct arc_mc_reader *r);

enum { ARC_MC_DIFF_STATUS = 1, ARC_MC_DIFF_FIELDS = 2, ARC_MC_DIFF_BODY = 4 };
/* Compares the shadow's answer (read by r) with the primary's under the
 * job's filter; returns ARC_MC_DIFF_* bits (0: a match) and writes the
 * names of differing fields, comma-separated, to `fields` (truncated to
 * cap). */
unsigned arc_mc__compare(const struct arc_mc_job *j, const struct arc_mc_reader *r, char *fields,
                         size_t cap);
/* The JSON text [p, p+n) without the members named in j->bfields (at any
 * depth), keys sorted, compact (malloc'd), or NULL when it is not JSON. */
char *arc_mc__json_canon(const struct arc_mc_job *j, const char *p, size_t n);

#endif
