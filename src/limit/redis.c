/*
 * The global tier's pure parts: the GCRA script, RESP commands, reply
 * interpretation, lease accounting and the circuit breaker (redis.h has
 * the design and the breaker's states).
 */
#include "limit/redis.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* (TIME: Redis's clock, so every node agrees; numbers are doubles in Lua:
 * µs since the epoch are exact below 2^53) */
const char ARC_RL_REDIS_SCRIPT[] =
    "local t = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local want = tonumber(ARGV[3])\n"
    "local tm = redis.call('TIME')\n"
    "local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tat < now then tat = now end\n"
    "local k = math.floor((now + burst * t - tat) / t)\n"
    "if k > want then k = want end\n"
    "if k < 0 then k = 0 end\n"
    "if k > 0 then\n"
    "  tat = tat + k * t\n"
    "  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',\n"
    "             math.ceil((tat - now) / 1000) + 1)\n"
    "end\n"
    "local retry = 0\n"
    "if k < want then\n"
    "  retry = math.ceil(tat + (want - k) * t - burst * t - now)\n"
    "  if retry < 1 then retry = 1 end\n"
    "end\n"
    "return {k, retry, math.floor(tat - now)}\n";

static char sha_hex[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_init(void)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)ARC_RL_REDIS_SCRIPT, strlen(ARC_RL_REDIS_SCRIPT), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(sha_hex + 2 * i, 3, "%02x", md[i]);
}

const char *arc_rl_redis_sha(void)
{
    pthread_once(&sha_once, sha_init);
    return sha_hex;
}

/* ------------------------------------------------------------ RESP */

static size_t put(char *out, size_t cap, size_t at, const char *p, size_t n)
{
    if (at < cap)
        memcpy(out + at, p, at + n <= cap ? n : cap - at);
    return at + n;
}

size_t arc_resp_cmd(char *out, size_t cap, size_t argc, const char *const *argv,
                    const size_t *lens)
{
    char num[32];
    size_t at = 0;
    int n = snprintf(num, sizeof(num), "*%zu\r\n", argc);
    at = put(out, cap, at, num, (size_t)n);
    for (size_t i = 0; i < argc; i++) {
        n = snprintf(num, sizeof(num), "$%zu\r\n", lens[i]);
        at = put(out, cap, at, num, (size_t)n);
        at = put(out, cap, at, argv[i], lens[i]);
        at = put(out, cap, at, "\r\n", 2);
    }
    return at;
}

size_t arc_rl_redis_take(char *out, size_t cap, bool eval, const char *key, size_t key_len,
                         double qps, uint32_t burst, uint32_t want)
{
    char t_us[32], b[16], w[16];
    snprintf(t_us, sizeof(t_us), "%.3f", 1e6 / qps);
    snprintf(b, sizeof(b), "%u", burst ? burst : 1);
    snprintf(w, sizeof(w), "%u", want);
    const char *argv[] = {
        eval ? "EVAL" : "EVALSHA", eval ? ARC_RL_REDIS_SCRIPT : arc_rl_redis_sha(), "1", key,
        t_us, b, w,
    };
    size_t lens[] = {
        strlen(argv[0]), strlen(argv[1]), 1, key_len, strlen(t_us), strlen(b), strlen(w),
    };
    return arc_resp_cmd(out, cap, sizeof(argv) / sizeof(argv[0]), argv, lens);
}

/* ------------------------------------------------------------ replies */

enum arc_rl_redis_result arc_rl_redis_reply(const struct redisReply *r, uint32_t *granted,
                                            uint64_t *retry_us)
{
    if (!r)
        return ARC_RL_REDIS_ERROR;
    if (r->type == REDIS_REPLY_ERROR)
        return r->str && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0
                   ? ARC_RL_REDIS_NOSCRIPT : ARC_RL_REDIS_ERROR;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return ARC_RL_REDIS_ERROR;
    for (size_t i = 0; i < 3; i++)
        if (!r->element[i] || r->element[i]->type != REDIS_REPLY_INTEGER ||
            r->element[i]->integer < 0)
            return ARC_RL_REDIS_ERROR;
    long long k = r->element[0]->integer;
    *granted = k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
    *retry_us = (uint64_t)r->element[1]->integer;
    return ARC_RL_REDIS_OK;
}

/* ------------------------------------------------------------ lease */

enum arc_rl_lease_verdict arc_rl_lease_take(struct arc_rl_lease *l, uint32_t lease,
                                            uint64_t now_ns, uint32_t *ask)
{
    *ask = 0;
    if (lease == 0)
        lease = 1;
    bool may_ask = !l->pending && now_ns >= l->retry_at_ns;
    if (l->tokens) {
        l->tokens--;
        if (may_ask && l->tokens <= lease / 2) {
            *ask = lease - l->tokens;
            l->pending = *ask;
        }
        return ARC_LEASE_SPEND;
    }
    if (l->pending)
        return ARC_LEASE_WAIT;
    if (!may_ask)
        return ARC_LEASE_REJECT;
    *ask = lease;
    l->pending = lease;
    return ARC_LEASE_WAIT;
}

void arc_rl_lease_granted(struct arc_rl_lease *l, uint32_t got, uint64_t retry_us,
                          uint64_t now_ns)
{
    l->pending = 0;
    l->tokens = got > UINT32_MAX - l->tokens ? UINT32_MAX : l->tokens + got;
    if (got == 0 || retry_us)
        l->retry_at_ns = now_ns + (retry_us ? retry_us : 1) * 1000;
}

void arc_rl_lease_failed(struct arc_rl_lease *l)
{
    l->pending = 0;
}

/* ------------------------------------------------------------ circuit breaker */

void arc_rl_cb_init(struct arc_rl_breaker *b, uint64_t circuit_open_ns)
{
    memset(b, 0, sizeof(*b));
    b->state = ARC_CB_CLOSED;
    b->open_ns = circuit_open_ns;
}

bool arc_rl_cb_allow(struct arc_rl_breaker *b, uint64_t now_ns)
{
    switch (b->state) {
    case ARC_CB_CLOSED:
        return true;
    case ARC_CB_OPEN:
        if (now_ns < b->reopen_at_ns)
            return false;
        b->state = ARC_CB_HALF_OPEN;
        return true;
    case ARC_CB_HALF_OPEN:
        break;
    }
    return false;
}

bool arc_rl_cb_result(struct arc_rl_breaker *b, bool ok, uint64_t now_ns)
{
    if (ok) {
        if (b->state != ARC_CB_HALF_OPEN)
            return false;               /* (a late answer while OPEN proves nothing) */
        b->state = ARC_CB_CLOSED;
        b->closed++;
        return true;
    }
    if (b->state == ARC_CB_OPEN)
        return false;                   /* (a late failure does not extend it) */
    b->opened++;
    b->state = ARC_CB_OPEN;
    b->reopen_at_ns = now_ns + b->open_ns;
    return true;
}
