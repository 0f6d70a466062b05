/*
 * The global tier's pure parts (limit/redis.h): RESP commands byte for
 * byte, reply interpretation through hiredis's redisReader, lease
 * accounting, the circuit breaker's transitions; and the GCRA script
 * against a real redis-server (Debian's, started here on a Unix socket in
 * a temporary directory with a password, stopped at the end): EVALSHA,
 * NOSCRIPT after SCRIPT FLUSH answered by EVAL, SELECT of a database, and
 * two "nodes" leasing from one key never getting more than the limit.
 */
#include "limit/redis.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000ull
#define SEC 1000000000ull

/* ------------------------------------------------------------ RESP */

static void test_resp_commands(void)
{
    char buf[512];
    const char *argv[] = { "SELECT", "3" };
    size_t lens[] = { 6, 1 };
    size_t n = arc_resp_cmd(buf, sizeof(buf), 2, argv, lens);
    CHECK_VIEW(buf, n, "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n");
    /* binary-safe: a CR LF inside an argument is just bytes */
    const char *a2[] = { "AUTH", "p\r\nw" };
    size_t l2[] = { 4, 4 };
    n = arc_resp_cmd(buf, sizeof(buf), 2, a2, l2);
    CHECK_VIEW(buf, n, "*2\r\n$4\r\nAUTH\r\n$4\r\np\r\nw\r\n");
    /* too small: nothing past cap, the needed length returned */
    char small[8];
    memset(small, 'x', sizeof(small));
    CHECK_INT(arc_resp_cmd(small, 5, 2, argv, lens), 23);
    CHECK(memcmp(small, "*2\r\n$", 5) == 0 && small[5] == 'x');
    /* the take call */
    const char *sha = arc_rl_redis_sha();
    CHECK_INT(strlen(sha), 40);
    n = arc_rl_redis_take(buf, sizeof(buf), false, "arc:k", 5, 4.0, 10, 64);
    char want[256];
    snprintf(want, sizeof(want), "*7\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n$5\r\narc:k\r\n"
             "$10\r\n250000.000\r\n$2\r\n10\r\n$2\r\n64\r\n", sha);
    CHECK_VIEW(buf, n, want);
    char big[4096];
    n = arc_rl_redis_take(big, sizeof(big), true, "arc:k", 5, 4.0, 10, 64);
    CHECK(n < sizeof(big) && memcmp(big, "*7\r\n$4\r\nEVAL\r\n", 14) == 0);
    CHECK(memmem(big, n, ARC_RL_REDIS_SCRIPT, strlen(ARC_RL_REDIS_SCRIPT)) != NULL);
}

static redisReply *parse(const char *s)
{
    redisReader *r = redisReaderCreate();
    redisReaderFeed(r, s, strlen(s));
    void *rep = NULL;
    if (redisReaderGetReply(r, &rep) != REDIS_OK)
        rep = NULL;
    redisReaderFree(r);
    return rep;
}

static void test_replies(void)
{
    uint32_t g = 99;
    uint64_t retry = 99;
    redisReply *r = parse("*3\r\n:5\r\n:0\r\n:1250000\r\n");
    CHECK_INT(arc_rl_redis_reply(r, &g, &retry), ARC_RL_REDIS_OK);
    CHECK_INT(g, 5);
    CHECK_INT(retry, 0);
    freeReplyObject(r);
    r = parse("-NOSCRIPT No matching script. Please use EVAL.\r\n");
    CHECK_INT(arc_rl_redis_reply(r, &g, &retry), ARC_RL_REDIS_NOSCRIPT);
    freeReplyObject(r);
    const char *bad[] = {
        "-ERR wrong number of arguments\r\n", "-NOAUTH Authentication required.\r\n",
        "*2\r\n:1\r\n:2\r\n", "*3\r\n:1\r\n$1\r\nx\r\n:3\r\n", "*3\r\n:-1\r\n:0\r\n:0\r\n",
        "+OK\r\n", ":7\r\n", "$-1\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = parse(bad[i]);
        CHECK(r != NULL);
        CHECK_INT(arc_rl_redis_reply(r, &g, &retry), ARC_RL_REDIS_ERROR);
        freeReplyObject(r);
    }
    CHECK_INT(arc_rl_redis_reply(NULL, &g, &retry), ARC_RL_REDIS_ERROR);
}

/* ------------------------------------------------------------ lease */

static void test_lease(void)
{
    struct arc_rl_lease l = { 0 };
    uint32_t ask;
    uint64_t now = 1000 * SEC;
    /* empty: the first request asks for a whole lease and waits; the next
     * waits too without asking again */
    CHECK_INT(arc_rl_lease_take(&l, 8, now, &ask), ARC_LEASE_WAIT);
    CHECK_INT(ask, 8);
    CHECK_INT(arc_rl_lease_take(&l, 8, now, &ask), ARC_LEASE_WAIT);
    CHECK_INT(ask, 0);
    arc_rl_lease_granted(&l, 8, 0, now);
    /* 8 tokens: spent one by one; at half (4 left) a refill of 4 goes out
     * ahead of need, once */
    uint32_t asked = 0, calls = 0;
    for (int i = 0; i < 4; i++) {
        CHECK_INT(arc_rl_lease_take(&l, 8, now, &ask), ARC_LEASE_SPEND);
        asked += ask;
        calls += ask > 0;
    }
    CHECK_INT(l.tokens, 4);
    CHECK_INT(asked, 4);
    CHECK_INT(calls, 1);
    for (int i = 0; i < 4; i++) {
        CHECK_INT(arc_rl_lease_take(&l, 8, now, &ask), ARC_LEASE_SPEND);
        CHECK_INT(ask, 0);
    }
    CHECK_INT(arc_rl_lease_take(&l, 8, now, &ask), ARC_LEASE_WAIT);
    CHECK_INT(ask, 0);
    /* Redis had only 1 left */
    arc_rl_lease_granted(&l, 1, 0, now);
    CHECK_INT(arc_rl_lease_take(&l, 8, now, &ask), ARC_LEASE_SPEND);
    CHECK_INT(ask, 8);                  /* (0 left <= half: asks again at once) */
    /* a grant of 0 with a retry time: rejected without asking until then */
    arc_rl_lease_granted(&l, 0, 250000, now);
    CHECK_INT(arc_rl_lease_take(&l, 8, now, &ask), ARC_LEASE_REJECT);
    CHECK_INT(ask, 0);
    CHECK_INT(arc_rl_lease_take(&l, 8, now + 249 * MS, &ask), ARC_LEASE_REJECT);
    CHECK_INT(arc_rl_lease_take(&l, 8, now + 250 * MS, &ask), ARC_LEASE_WAIT);
    CHECK_INT(ask, 8);
    /* a failed refill: nothing in flight; the next request asks again */
    arc_rl_lease_failed(&l);
    CHECK_INT(arc_rl_lease_take(&l, 8, now + 251 * MS, &ask), ARC_LEASE_WAIT);
    CHECK_INT(ask, 8);
    /* a short grant with a retry time: its tokens are spent, then no call
     * (and rejections) until that time: a saturated key costs a call per
     * lease, not per token */
    struct arc_rl_lease sh = { 0 };
    CHECK_INT(arc_rl_lease_take(&sh, 8, now, &ask), ARC_LEASE_WAIT);
    arc_rl_lease_granted(&sh, 2, 60000, now);
    CHECK_INT(arc_rl_lease_take(&sh, 8, now, &ask), ARC_LEASE_SPEND);
    CHECK_INT(ask, 0);
    CHECK_INT(arc_rl_lease_take(&sh, 8, now, &ask), ARC_LEASE_SPEND);
    CHECK_INT(arc_rl_lease_take(&sh, 8, now + 59 * MS, &ask), ARC_LEASE_REJECT);
    CHECK_INT(ask, 0);
    CHECK_INT(arc_rl_lease_take(&sh, 8, now + 60 * MS, &ask), ARC_LEASE_WAIT);
    CHECK_INT(ask, 8);
    /* lease 1: one call per request (no prefetch beyond the lease) */
    struct arc_rl_lease one = { 0 };
    CHECK_INT(arc_rl_lease_take(&one, 1, now, &ask), ARC_LEASE_WAIT);
    CHECK_INT(ask, 1);
    arc_rl_lease_granted(&one, 1, 0, now);
    CHECK_INT(arc_rl_lease_take(&one, 1, now, &ask), ARC_LEASE_SPEND);
    CHECK_INT(ask, 1);
    /* conservation over a random run: spent = granted - still leased */
    struct arc_rl_lease r = { 0 };
    uint64_t granted = 0, spent = 0, pend = 0;
    uint32_t x = 12345;
    for (int i = 0; i < 100000; i++) {
        x = x * 1103515245u + 12345u;
        if ((x >> 16) % 3 == 0 && pend) {
            uint32_t got = (x >> 8) % (pend + 1);
            arc_rl_lease_granted(&r, got, 1000, now);
            granted += got;
            pend = 0;
            continue;
        }
        enum arc_rl_lease_verdict v = arc_rl_lease_take(&r, 16, now, &ask);
        spent += v == ARC_LEASE_SPEND;
        if (ask) {
            CHECK(pend == 0);           /* one refill in flight at most */
            pend = ask;
        }
        now += 100 * 1000;
    }
    CHECK_INT(spent, granted - r.tokens);
}

/* ------------------------------------------------------------ breaker */

static void test_breaker(void)
{
    struct arc_rl_breaker b;
    uint64_t t = 1000 * SEC;
    arc_rl_cb_init(&b, 500 * MS);
    CHECK(arc_rl_cb_allow(&b, t));
    CHECK(!arc_rl_cb_result(&b, true, t));          /* closed stays closed */
    CHECK(arc_rl_cb_result(&b, false, t));          /* → open */
    CHECK_INT(b.state, ARC_CB_OPEN);
    CHECK_INT(b.opened, 1);
    CHECK(!arc_rl_cb_result(&b, false, t + 100 * MS));  /* late failure: no extension */
    CHECK(!arc_rl_cb_result(&b, true, t + 100 * MS));   /* late success: still open */
    CHECK(!arc_rl_cb_allow(&b, t + 499 * MS));
    CHECK(arc_rl_cb_allow(&b, t + 500 * MS));       /* the probe */
    CHECK_INT(b.state, ARC_CB_HALF_OPEN);
    CHECK(!arc_rl_cb_allow(&b, t + 501 * MS));      /* one probe only */
    CHECK(arc_rl_cb_result(&b, false, t + 502 * MS));   /* probe failed: open again */
    CHECK_INT(b.opened, 2);
    CHECK(!arc_rl_cb_allow(&b, t + 1001 * MS));
    CHECK(arc_rl_cb_allow(&b, t + 1002 * MS));
    CHECK(arc_rl_cb_result(&b, true, t + 1003 * MS));   /* probe answered: closed */
    CHECK_INT(b.state, ARC_CB_CLOSED);
    CHECK_INT(b.closed, 1);
    CHECK(arc_rl_cb_allow(&b, t + 1004 * MS));
}

/* ------------------------------------------------------------ real Redis */

struct rconn {
    int fd;
    redisReader *rd;
};

static redisReply *rcall(struct rconn *c, const char *cmd, size_t len)
{
    if (write(c->fd, cmd, len) != (ssize_t)len)
        return NULL;
    for (;;) {
        void *rep = NULL;
        if (redisReaderGetReply(c->rd, &rep) != REDIS_OK)
            return NULL;
        if (rep)
            return rep;
        char buf[4096];
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n <= 0)
            return NULL;
        redisReaderFeed(c->rd, buf, (size_t)n);
    }
}

static redisReply *rcmd(struct rconn *c, size_t argc, const char *const *argv)
{
    size_t lens[8];
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    char buf[512];
    size_t n = arc_resp_cmd(buf, sizeof(buf), argc, argv, lens);
    return n <= sizeof(buf) ? rcall(c, buf, n) : NULL;
}

static bool rconnect(struct rconn *c, const char *path)
{
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(c->fd);
        return false;
    }
    c->rd = redisReaderCreate();
    return true;
}

static void rclose(struct rconn *c)
{
    close(c->fd);
    redisReaderFree(c->rd);
}

/* Takes up to `want` tokens; EVALSHA first, EVAL after NOSCRIPT. Returns
 * the tokens granted, -1 on an error. *noscript counts the reloads. */
static long take(struct rconn *c, const char *key, double qps, uint32_t burst, uint32_t want,
                 int *noscript)
{
    char buf[4096];
    for (int eval = 0; eval < 2; eval++) {
        size_t n = arc_rl_redis_take(buf, sizeof(buf), eval, key, strlen(key), qps, burst, want);
        redisReply *r = rcall(c, buf, n);
        uint32_t g;
        uint64_t retry;
        enum arc_rl_redis_result res = arc_rl_redis_reply(r, &g, &retry);
        freeReplyObject(r);
        if (res == ARC_RL_REDIS_OK)
            return g;
        if (res != ARC_RL_REDIS_NOSCRIPT)
            return -1;
        ++*noscript;
    }
    return -1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static void test_script_on_redis(void)
{
    if (access("/usr/bin/redis-server", X_OK) != 0) {
        fprintf(stderr, "redis-server is missing (scripts/install-deps.sh installs it)\n");
        CHECK(0);
        return;
    }
    char dir[] = "/tmp/arc-redis-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sock[128];
    snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execl("/usr/bin/redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
              "--dir", dir, "--save", "", "--appendonly", "no", "--requirepass", "s3cret",
              "--databases", "4", (char *)NULL);
        _exit(127);
    }
    struct rconn c = { -1, NULL };
    bool up = false;
    for (int i = 0; i < 500 && !up; i++) {
        up = rconnect(&c, sock);
        if (!up)
            usleep(10000);
    }
    CHECK(up);
    if (up) {
        int noscript = 0;
        /* no password yet: the call is an error, not a grant */
        CHECK_INT(take(&c, "arc:a", 10, 5, 1, &noscript), -1);
        redisReply *r = rcmd(&c, 2, (const char *[]){ "AUTH", "wrong" });
        CHECK(r && r->type == REDIS_REPLY_ERROR);
        freeReplyObject(r);
        r = rcmd(&c, 2, (const char *[]){ "AUTH", "s3cret" });
        CHECK(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        r = rcmd(&c, 2, (const char *[]){ "SELECT", "2" });
        CHECK(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        /* first call: NOSCRIPT, then EVAL; then EVALSHA works */
        CHECK_INT(take(&c, "arc:a", 10, 5, 3, &noscript), 3);
        CHECK_INT(noscript, 1);
        CHECK_INT(take(&c, "arc:a", 10, 5, 3, &noscript), 2);   /* burst 5: 2 left */
        CHECK_INT(noscript, 1);
        CHECK_INT(take(&c, "arc:a", 10, 5, 3, &noscript), 0);
        /* the key lives in database 2 only */
        r = rcmd(&c, 2, (const char *[]){ "EXISTS", "arc:a" });
        CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
        freeReplyObject(r);
        r = rcmd(&c, 2, (const char *[]){ "SELECT", "0" });
        freeReplyObject(r);
        r = rcmd(&c, 2, (const char *[]){ "EXISTS", "arc:a" });
        CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
        freeReplyObject(r);
        /* SCRIPT FLUSH: the next call reloads it */
        r = rcmd(&c, 2, (const char *[]){ "SCRIPT", "FLUSH" });
        freeReplyObject(r);
        CHECK_INT(take(&c, "arc:b", 10, 5, 1, &noscript), 1);
        CHECK_INT(noscript, 2);
        /* the reply to a refused take carries the retry time */
        char buf[4096];
        take(&c, "arc:c", 2, 1, 1, &noscript);
        size_t n = arc_rl_redis_take(buf, sizeof(buf), false, "arc:c", 5, 2, 1, 1);
        r = rcall(&c, buf, n);
        uint32_t g = 9;
        uint64_t retry = 0;
        CHECK_INT(arc_rl_redis_reply(r, &g, &retry), ARC_RL_REDIS_OK);
        CHECK_INT(g, 0);
        CHECK(retry > 400000 && retry <= 500000);             /* 1/2 s */
        freeReplyObject(r);
        /* a short grant says when the rest could be had: 3 more at 2/s */
        n = arc_rl_redis_take(buf, sizeof(buf), false, "arc:c", 5, 2, 1, 4);
        r = rcall(&c, buf, n);
        CHECK_INT(arc_rl_redis_reply(r, &g, &retry), ARC_RL_REDIS_OK);
        CHECK_INT(g, 0);
        CHECK(retry > 1900000 && retry <= 2000000);           /* 4 x 1/2 s */
        freeReplyObject(r);
        /* two nodes leasing 8 at a time from one key at 200/s, burst 20,
         * for 1 s: together never more than burst + qps·t (+ one token of
         * rounding), and close to it */
        struct rconn c2 = { -1, NULL };
        CHECK(rconnect(&c2, sock));
        r = rcmd(&c2, 2, (const char *[]){ "AUTH", "s3cret" });
        freeReplyObject(r);
        uint64_t t0 = now_ns(), total = 0;
        while (now_ns() - t0 < SEC) {
            long a = take(&c, "arc:shared", 200, 20, 8, &noscript);
            long b = take(&c2, "arc:shared", 200, 20, 8, &noscript);
            CHECK(a >= 0 && b >= 0);
            total += (uint64_t)(a > 0 ? a : 0) + (uint64_t)(b > 0 ? b : 0);
            usleep(2000);
        }
        double secs = (double)(now_ns() - t0) / SEC;
        double cap = 20 + 200 * secs + 1;
        fprintf(stderr, "shared: %llu tokens in %.3f s (cap %.1f)\n",
                (unsigned long long)total, secs, cap);
        CHECK((double)total <= cap);
        CHECK((double)total >= 0.9 * (20 + 200 * (secs - 0.05)));
        rclose(&c2);
        rclose(&c);
    }
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_resp_commands);
    RUN(test_replies);
    RUN(test_lease);
    RUN(test_breaker);
    RUN(test_script_on_redis);
    return TEST_REPORT();
}
