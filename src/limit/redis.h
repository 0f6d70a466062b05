/**
 * The global tier's pure parts (scope: global, rate_limits.global): what
 * Arc says to Redis, how it reads the answer, how a worker spends tokens
 * leased from Redis, and the circuit breaker that decides when Redis is
 * not to be asked. No I/O here: the connection is proxy/glimit.c's (one
 * thread per node), the leases and waiting requests proxy/ratelimit.c's;
 * these parts are tested on their own, the script against a real
 * redis-server (tests/unit/limit/redis_test.c).
 *
 * The script (ARC_RL_REDIS_SCRIPT): GCRA over one key in Redis, taking up
 * to `want` tokens at once: with T the emission interval and TAT the
 * stored theoretical arrival time (µs, Redis's own clock, so every node
 * agrees), k = min(want, floor((now + burst·T − max(TAT, now)) / T))
 * tokens are granted and TAT advances by k·T; the key expires when it
 * would be at rest. Reply: {k, retry_us, tat_us − now_us}; retry_us is 0
 * when all `want` were granted, else the time until the rest could be (so
 * a saturated key costs one call per lease, not one per token). Loaded once (SCRIPT LOAD), then called by its SHA-1
 * (EVALSHA); a NOSCRIPT error (Redis restarted, SCRIPT FLUSH) is answered
 * by sending the same call as EVAL, which also caches the script again.
 *
 * Lease (struct arc_rl_lease, per worker and key): a worker spends tokens
 * it leased; when they fall to half the lease it asks for a refill ahead of
 * need (one request in flight at most), so Redis sees one call per half a
 * lease, not one per request; a request that finds none left waits for the
 * refill in flight. A short grant carries Redis's retry time: once its
 * tokens are spent, the worker rejects without asking until then.
 *
 * Circuit breaker (struct arc_rl_breaker):
 *
 *   CLOSED ──call failed or slower than timeout──▶ OPEN (for circuit_open)
 *   OPEN ──circuit_open elapsed, next call──▶ HALF_OPEN (that call is the probe)
 *   HALF_OPEN ──probe answered in time──▶ CLOSED
 *   HALF_OPEN ──probe failed──▶ OPEN (again for circuit_open)
 *
 * While not CLOSED (except the probe), decisions use the fallback
 * (fail_open / local_share / fail_closed).
 */
#ifndef ARC_LIMIT_REDIS_H
#define ARC_LIMIT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply;

extern const char ARC_RL_REDIS_SCRIPT[];
/* Lower-case hex SHA-1 of the script (what EVALSHA names), computed once. */
const char *arc_rl_redis_sha(void);

/* ------------------------------------------------------------ RESP commands */

/* One command as a RESP array of bulk strings into out (cap bytes).
 * Returns the length the command needs (as snprintf: nothing is written
 * past cap; a result > cap means out was too small). */
size_t arc_resp_cmd(char *out, size_t cap, size_t argc, const char *const *argv,
                    const size_t *lens);

/* The GCRA call for `want` tokens of `key` under a limit of qps (burst
 * >= 1): EVALSHA <sha> 1 <key> <T µs> <burst> <want>, or with eval the
 * same as EVAL <script> ... (after NOSCRIPT). Returns as arc_resp_cmd. */
size_t arc_rl_redis_take(char *out, size_t cap, bool eval, const char *key, size_t key_len,
                         double qps, uint32_t burst, uint32_t want);

/* ------------------------------------------------------------ replies */

enum arc_rl_redis_result {
    ARC_RL_REDIS_OK,            /* *granted, *retry_us filled */
    ARC_RL_REDIS_NOSCRIPT,      /* send the call again as EVAL */
    ARC_RL_REDIS_ERROR,         /* an error reply, or a reply of the wrong shape */
};
/* Interprets the reply to a take call (parsed by hiredis's redisReader). */
enum arc_rl_redis_result arc_rl_redis_reply(const struct redisReply *r, uint32_t *granted,
                                            uint64_t *retry_us);

/* ------------------------------------------------------------ lease */

struct arc_rl_lease {
    uint32_t tokens;            /* leased and not spent */
    uint32_t pending;           /* tokens asked for, answer not in (0: none in flight) */
    uint64_t retry_at_ns;       /* a grant of 0 said: nothing before this */
};

enum arc_rl_lease_verdict {
    ARC_LEASE_SPEND,            /* a leased token was spent: allowed */
    ARC_LEASE_WAIT,             /* none left; a refill is in flight: wait for it */
    ARC_LEASE_REJECT,           /* none left and Redis said none before retry_at_ns */
};

/* One request at now_ns with lease size `lease` (>= 1). *ask: tokens to
 * ask Redis for now (0: no call), set when the tokens left are at or below
 * half the lease and no refill is in flight. */
enum arc_rl_lease_verdict arc_rl_lease_take(struct arc_rl_lease *l, uint32_t lease,
                                            uint64_t now_ns, uint32_t *ask);
/* Redis granted `got` of the tokens asked (retry_us: its retry time when
 * short, 0 when whole). */
void arc_rl_lease_granted(struct arc_rl_lease *l, uint32_t got, uint64_t retry_us,
                          uint64_t now_ns);
/* The refill failed (error, timeout): nothing in flight any more; the
 * tokens still leased stay. */
void arc_rl_lease_failed(struct arc_rl_lease *l);

/* ------------------------------------------------------------ circuit breaker */

enum arc_rl_cb_state { ARC_CB_CLOSED, ARC_CB_OPEN, ARC_CB_HALF_OPEN };

struct arc_rl_breaker {
    enum arc_rl_cb_state state;
    uint64_t open_ns;           /* circuit_open */
    uint64_t reopen_at_ns;      /* OPEN: when a probe may go */
    uint64_t opened, closed;    /* transitions into OPEN and back to CLOSED (counted) */
};

void arc_rl_cb_init(struct arc_rl_breaker *b, uint64_t circuit_open_ns);
/* May a call go to Redis now? OPEN past its time turns HALF_OPEN and lets
 * this one call through as the probe; HALF_OPEN lets no other through. */
bool arc_rl_cb_allow(struct arc_rl_breaker *b, uint64_t now_ns);
/* A call's outcome: ok = answered, and within the timeout. Returns true
 * when the state changed (the caller logs the transition). */
bool arc_rl_cb_result(struct arc_rl_breaker *b, bool ok, uint64_t now_ns);

#endif
