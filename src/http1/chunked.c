/*
 * Incremental chunked transfer-coding decoder (RFC 9112 §7.1).
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val      = token / quoted-string
 *
 * Every framing byte moves a byte-level state machine, and the only state
 * kept between calls is in struct arc_h1_chunked, so any split of the input
 * gives the same result. Data bytes are skipped in one step.
 *
 *   state          byte (SP = SP or HTAB)      next
 *   SIZE0          HEXDIG                      SIZE
 *   SIZE           HEXDIG ; SP CR              SIZE EXT_NAME0 SIZE_BWS SIZE_LF
 *   SIZE_BWS       SP ;                        SIZE_BWS EXT_NAME0
 *   EXT_NAME0      SP tchar                    EXT_NAME0 EXT_NAME
 *   EXT_NAME       tchar = ; SP CR             EXT_NAME EXT_VAL0 EXT_NAME0 EXT_NAME_BWS SIZE_LF
 *   EXT_NAME_BWS   SP = ;                      EXT_NAME_BWS EXT_VAL0 EXT_NAME0
 *   EXT_VAL0       SP tchar DQUOTE             EXT_VAL0 EXT_TOKEN EXT_QS
 *   EXT_TOKEN      tchar ; SP CR               EXT_TOKEN EXT_NAME0 SIZE_BWS SIZE_LF
 *   EXT_QS         qdtext \ DQUOTE             EXT_QS EXT_QS_ESC EXT_QS_END
 *   EXT_QS_ESC     HTAB SP VCHAR obs-text      EXT_QS
 *   EXT_QS_END     ; SP CR                     EXT_NAME0 SIZE_BWS SIZE_LF
 *   SIZE_LF        LF                          DATA (size > 0) or TR_LINE0 (size 0)
 *   DATA           `size` bytes, reported      DATA_CR
 *   DATA_CR        CR                          DATA_LF
 *   DATA_LF        LF                          SIZE0
 *   TR_LINE0       CR tchar                    TR_END_LF TR_NAME
 *   TR_NAME        tchar :                     TR_NAME TR_VALUE
 *   TR_VALUE       field-content CR            TR_VALUE TR_LF
 *   TR_LF          LF                          TR_LINE0
 *   TR_END_LF      LF                          DONE (sticky: later calls return DONE)
 *   any state      any other byte, or a limit  FAILED (sticky)
 *
 * All moves happen in step(), called only from arc_h1_chunked_next(), which
 * also handles DATA (whole spans at once), the limits, DONE and FAILED.
 *
 * BWS is accepted only where the grammar has it (around ';' and '='), never
 * before CRLF, and a bare LF or CR is never a line ending: these are where
 * decoders have disagreed and been used for smuggling.
 *
 * Kept trailer fields (arc_h1_chunked_keep_trailers) are copied by the
 * trailer states themselves, byte by byte, so however the section is split
 * the copy is the same: "name:value\n" per field, the value without OWS.
 * Leading OWS is skipped as it arrives; trailing OWS is copied until the CR
 * shows it was trailing and is then cut (_tr_vend marks the last non-OWS
 * byte). A token name holds no ':' and field-content no LF, so the two
 * separators need no escaping. The copy is never longer than the raw bytes
 * it came from, so it fits in max_trailer_bytes.
 */
#include "http1/http1.h"
#include "http1/http1_int.h"

#include "core/arena.h"

#define IS(c, cl) ARC_H1__IS(c, cl)

#define DEFAULT_MAX_LINE          4096u
#define DEFAULT_MAX_TRAILER_BYTES 32768u

enum {
    S_SIZE0 = 0,        /* zero state = start of a chunk-size line */
    S_SIZE,
    S_SIZE_BWS,         /* whitespace after size or ext-val: ';' must follow */
    S_EXT_NAME0,
    S_EXT_NAME,
    S_EXT_NAME_BWS,     /* whitespace after ext-name: ';' or '=' must follow */
    S_EXT_VAL0,
    S_EXT_TOKEN,
    S_EXT_QS,
    S_EXT_QS_ESC,
    S_EXT_QS_END,
    S_SIZE_LF,
    S_DATA,
    S_DATA_CR,
    S_DATA_LF,
    S_TR_LINE0,
    S_TR_NAME,
    S_TR_VALUE,
    S_TR_LF,
    S_TR_END_LF,
    S_DONE,
    S_FAILED,
};

void arc_h1_chunked_init(struct arc_h1_chunked *st)
{
    memset(st, 0, sizeof(*st));
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static uint32_t max_trailer(const struct arc_h1_chunked *st)
{
    return st->max_trailer_bytes ? st->max_trailer_bytes : DEFAULT_MAX_TRAILER_BYTES;
}

/* ------------------------------------------------------------ kept trailers */

#define TR_FIRST_CAP 256u

/* Appends one byte to the kept fields; NULL or an error reason. Only the
 * trailer states call it, so a decoder that keeps nothing pays one test per
 * trailer byte and nothing per data or chunk-size byte. */
static const char *tr_put(struct arc_h1_chunked *st, char c)
{
    if (!st->_tr_arena)
        return NULL;
    if (st->_tr_len == st->_tr_cap) {
        /* An arena cannot grow a block in place: take one twice as big and
         * leave the old one to the arena (the old ones add up to less than
         * the last, so the arena holds under 2 x max_trailer_bytes). */
        uint32_t max = max_trailer(st);
        uint32_t cap = st->_tr_cap ? st->_tr_cap * 2 : TR_FIRST_CAP;
        if (cap > max || cap < st->_tr_cap)
            cap = max;
        /* The copy is no longer than the trailer bytes counted so far,
         * which the caller has checked against max: there is room. */
        ARC_ASSERT(cap > st->_tr_len);
        char *nb = arc_arena_alloc(st->_tr_arena, cap);
        if (!nb)
            return "out of memory for trailer fields";
        if (st->_tr_len)
            memcpy(nb, st->_tr_buf, st->_tr_len);
        st->_tr_buf = nb;
        st->_tr_cap = cap;
    }
    st->_tr_buf[st->_tr_len++] = c;
    return NULL;
}

/* The ':' after a kept name: the value starts here. */
static const char *tr_colon(struct arc_h1_chunked *st)
{
    const char *why = tr_put(st, ':');
    st->_tr_vstart = st->_tr_vend = st->_tr_len;
    return why;
}

/* A field-content byte of a kept value (RFC 9112 §5: OWS around the value
 * is not part of it). */
static const char *tr_value(struct arc_h1_chunked *st, unsigned char c)
{
    if (!st->_tr_arena)
        return NULL;
    if (is_ws(c) && st->_tr_len == st->_tr_vstart)
        return NULL;
    const char *why = tr_put(st, (char)c);
    if (!is_ws(c))
        st->_tr_vend = st->_tr_len;
    return why;
}

/* The CR ending a kept field line. */
static const char *tr_end_field(struct arc_h1_chunked *st)
{
    if (!st->_tr_arena)
        return NULL;
    st->_tr_len = st->_tr_vend;
    const char *why = tr_put(st, '\n');
    st->_tr_count++;
    return why;
}

/* ------------------------------------------------------------ decoder */

/* Moves over one framing byte (any state but DATA, DONE, FAILED).
 * Returns NULL or an error reason. */
static inline const char *step(struct arc_h1_chunked *st, unsigned char c)
{
    switch (st->state) {
    case S_SIZE0:
        if (!IS(c, ARC_H1__HEX))
            return "invalid chunk size";
        st->remaining = 0;
        st->state = S_SIZE;
        /* fallthrough */
    case S_SIZE:
        if (IS(c, ARC_H1__HEX)) {
            /* Keep the size below 2^63 so it fits off_t downstream. */
            if (st->remaining >> 59)
                return "chunk size overflows";
            unsigned d = c <= '9' ? (unsigned)(c - '0') : (unsigned)(c | 0x20) - 'a' + 10;
            st->remaining = (st->remaining << 4) | d;
        } else if (c == ';') {
            st->state = S_EXT_NAME0;
        } else if (is_ws(c)) {
            st->state = S_SIZE_BWS;
        } else if (c == '\r') {
            st->state = S_SIZE_LF;
        } else {
            return "invalid chunk size";
        }
        return NULL;
    case S_SIZE_BWS:
        if (c == ';')
            st->state = S_EXT_NAME0;
        else if (!is_ws(c))
            return "invalid chunk extension";
        return NULL;
    case S_EXT_NAME0:
        if (IS(c, ARC_H1__TCHAR))
            st->state = S_EXT_NAME;
        else if (!is_ws(c))
            return "invalid chunk extension";
        return NULL;
    case S_EXT_NAME:
        if (IS(c, ARC_H1__TCHAR))
            ;
        else if (c == '=')
            st->state = S_EXT_VAL0;
        else if (c == ';')
            st->state = S_EXT_NAME0;
        else if (is_ws(c))
            st->state = S_EXT_NAME_BWS;
        else if (c == '\r')
            st->state = S_SIZE_LF;
        else
            return "invalid chunk extension";
        return NULL;
    case S_EXT_NAME_BWS:
        if (c == '=')
            st->state = S_EXT_VAL0;
        else if (c == ';')
            st->state = S_EXT_NAME0;
        else if (!is_ws(c))
            return "invalid chunk extension";
        return NULL;
    case S_EXT_VAL0:
        if (IS(c, ARC_H1__TCHAR))
            st->state = S_EXT_TOKEN;
        else if (c == '"')
            st->state = S_EXT_QS;
        else if (!is_ws(c))
            return "invalid chunk extension";
        return NULL;
    case S_EXT_TOKEN:
    case S_EXT_QS_END:
        if (st->state == S_EXT_TOKEN && IS(c, ARC_H1__TCHAR))
            ;
        else if (c == ';')
            st->state = S_EXT_NAME0;
        else if (is_ws(c))
            st->state = S_SIZE_BWS;
        else if (c == '\r')
            st->state = S_SIZE_LF;
        else
            return "invalid chunk extension";
        return NULL;
    case S_EXT_QS:
        if (c == '"')
            st->state = S_EXT_QS_END;
        else if (c == '\\')
            st->state = S_EXT_QS_ESC;
        else if (!IS(c, ARC_H1__QDTEXT))
            return "invalid chunk extension";
        return NULL;
    case S_EXT_QS_ESC:
        /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        if (!IS(c, ARC_H1__VALUE))
            return "invalid chunk extension";
        st->state = S_EXT_QS;
        return NULL;
    case S_SIZE_LF:
        if (c != '\n')
            return "bare CR in chunk header";
        if (st->remaining) {
            st->state = S_DATA;
        } else {
            st->state = S_TR_LINE0;
        }
        st->line_len = 0;
        return NULL;
    case S_DATA_CR:
        if (c != '\r')
            return "missing CRLF after chunk data";
        st->state = S_DATA_LF;
        return NULL;
    case S_DATA_LF:
        if (c != '\n')
            return "missing CRLF after chunk data";
        st->state = S_SIZE0;
        st->line_len = 0;
        return NULL;
    case S_TR_LINE0:
        if (c == '\r') {
            st->state = S_TR_END_LF;
            return NULL;
        }
        if (!IS(c, ARC_H1__TCHAR))
            return "invalid trailer field";     /* (SP or HTAB here is obs-fold) */
        st->state = S_TR_NAME;
        return tr_put(st, (char)c);
    case S_TR_NAME:
        if (c == ':') {
            st->state = S_TR_VALUE;
            return tr_colon(st);
        }
        if (!IS(c, ARC_H1__TCHAR))
            return "invalid trailer field";
        return tr_put(st, (char)c);
    case S_TR_VALUE:
        if (c == '\r') {
            st->state = S_TR_LF;
            return tr_end_field(st);
        }
        if (!IS(c, ARC_H1__VALUE))
            return "invalid trailer field";
        return tr_value(st, c);
    case S_TR_LF:
        if (c != '\n')
            return "bare CR in trailer section";
        st->state = S_TR_LINE0;
        st->line_len = 0;
        return NULL;
    case S_TR_END_LF:
        if (c != '\n')
            return "bare CR in trailer section";
        st->state = S_DONE;
        return NULL;
    default:
        /* S_DATA, S_DONE and S_FAILED are handled by the caller. */
        return "chunked decoder in an invalid state";
    }
}

enum arc_h1_chunk_rc arc_h1_chunked_next(struct arc_h1_chunked *st,
                                         const char *buf, size_t len,
                                         size_t *consumed,
                                         const char **data, size_t *data_len,
                                         const char **err)
{
    const char *p = buf, *end = buf + len;
    uint32_t max_line = st->max_line ? st->max_line : DEFAULT_MAX_LINE;
    uint32_t max_tr = max_trailer(st);
    const char *why;

    *data = NULL;
    *data_len = 0;
    *err = NULL;
    *consumed = 0;
    if (st->state == S_DONE)
        return ARC_H1_CHUNK_DONE;
    if (st->state == S_FAILED) {
        *err = "chunked body already failed";
        return ARC_H1_CHUNK_ERROR;
    }

    while (p < end) {
        if (st->state == S_DATA) {
            size_t avail = (size_t)(end - p);
            size_t n = st->remaining < avail ? (size_t)st->remaining : avail;
            *data = p;
            *data_len = n;
            p += n;
            st->remaining -= n;
            if (st->remaining == 0)
                st->state = S_DATA_CR;
            *consumed = (size_t)(p - buf);
            return ARC_H1_CHUNK_DATA;
        }
        /* Bounds on the line being read, and on the whole trailer section:
         * a peer must not make us walk an endless chunk-ext or trailer. */
        if (st->state >= S_TR_LINE0) {
            if (++st->trailer_bytes > max_tr) {
                why = "trailer section too large";
                goto fail;
            }
        }
        if (st->state != S_DATA_CR && st->state != S_DATA_LF && ++st->line_len > max_line) {
            why = "chunk header or trailer line too long";
            goto fail;
        }
        why = step(st, (unsigned char)*p++);
        if (why)
            goto fail;
        if (st->state == S_DONE) {
            *consumed = (size_t)(p - buf);
            return ARC_H1_CHUNK_DONE;
        }
    }
    *consumed = len;
    return ARC_H1_CHUNK_AGAIN;

fail:
    st->state = S_FAILED;
    *consumed = (size_t)(p - buf);
    *err = why;
    return ARC_H1_CHUNK_ERROR;
}

/* ------------------------------------------------------------ trailer API */

void arc_h1_chunked_keep_trailers(struct arc_h1_chunked *st, struct arc_arena *arena)
{
    /* Trailer bytes already walked past could not be kept any more. */
    ARC_ASSERT(arena != NULL && st->state < S_TR_LINE0 && st->_tr_len == 0);
    st->_tr_arena = arena;
}

size_t arc_h1_chunked_trailer_count(const struct arc_h1_chunked *st)
{
    return st->state == S_DONE && st->_tr_arena ? st->_tr_count : 0;
}

bool arc_h1_chunked_trailer_next(const struct arc_h1_chunked *st, size_t *pos,
                                 struct arc_h1_header *out)
{
    if (st->state != S_DONE || !st->_tr_arena || *pos >= st->_tr_len)
        return false;
    const char *p = st->_tr_buf + *pos, *end = st->_tr_buf + st->_tr_len;
    const char *colon = memchr(p, ':', (size_t)(end - p));
    ARC_ASSERT(colon != NULL);
    const char *nl = memchr(colon + 1, '\n', (size_t)(end - colon - 1));
    ARC_ASSERT(nl != NULL);
    out->name = arc_str_make(p, (size_t)(colon - p));
    out->value = arc_str_make(colon + 1, (size_t)(nl - colon - 1));
    *pos = (size_t)(nl + 1 - st->_tr_buf);
    return true;
}

/* RFC 9110 §6.5.1 (see arc_h1_trailer_allowed in http1.h for the groups). */
#define NAME(s) { s, sizeof(s) - 1 }
static const struct {
    const char *name;
    size_t len;
} NOT_IN_TRAILERS[] = {
    /* framing, connection */
    NAME("Transfer-Encoding"), NAME("Content-Length"), NAME("Trailer"), NAME("TE"),
    NAME("Connection"), NAME("Keep-Alive"), NAME("Proxy-Connection"), NAME("Upgrade"),
    /* routing, request modifiers */
    NAME("Host"), NAME("Max-Forwards"), NAME("Expect"), NAME("Range"), NAME("If-Match"),
    NAME("If-None-Match"), NAME("If-Modified-Since"), NAME("If-Unmodified-Since"),
    NAME("If-Range"),
    /* authentication, state */
    NAME("Authorization"), NAME("Proxy-Authorization"), NAME("WWW-Authenticate"),
    NAME("Proxy-Authenticate"), NAME("Cookie"), NAME("Set-Cookie"),
    /* response controls */
    NAME("Age"), NAME("Cache-Control"), NAME("Date"), NAME("Expires"), NAME("Location"),
    NAME("Pragma"), NAME("Retry-After"), NAME("Vary"), NAME("Warning"),
    /* content format */
    NAME("Content-Type"), NAME("Content-Encoding"), NAME("Content-Language"),
    NAME("Content-Location"), NAME("Content-Range"),
};
#undef NAME

bool arc_h1_trailer_allowed(struct arc_str name)
{
    /* A linear scan: it runs once per trailer field, which few messages
     * have, and most names fail on the length. */
    for (size_t i = 0; i < ARC_ARRAY_LEN(NOT_IN_TRAILERS); i++)
        if (name.len == NOT_IN_TRAILERS[i].len &&
            arc_str_ieq(name, NOT_IN_TRAILERS[i].name, NOT_IN_TRAILERS[i].len))
            return false;
    return true;
}
