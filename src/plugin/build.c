/*
 * Ahead-of-time compilation of a proxy-wasm module:
 *
 *   FILTER.wasm ──wasm2c -n m──▶ m.c + m.h ──rewrite (fuel at calls and
 *   back-edges)──▶ m.c' ──cc -O2 -shared with shim.c (runtime, import
 *   forwarders, export table)──▶ <cache_dir>/<sha256>.so
 *
 * The cache key is the SHA-256 of the module bytes and of everything that
 * shapes the output (shim ABI, this file's generator version, flags), so a
 * rebuilt Arc never loads a stale object. The compiler runs in a private
 * temporary directory inside the cache and the object is renamed into place:
 * two processes building the same module at once both end with a complete
 * file. The cache directory must belong to Arc's user and be writable by
 * nobody else (a .so there is code Arc will run).
 */
#include "plugin/plugin_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

extern char **environ;

/* Bump when the generated code changes shape. */
#define GEN_VERSION "arc-w2c-11"
#define CC_FLAGS "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-w", "-std=gnu11"

const struct arc_pl_sig arc_pl__exports[PLX__COUNT] = {
    [PLX_ABI_0_2_0] = { "proxy_abi_version_0_2_0", ">" },
    [PLX_ABI_0_2_1] = { "proxy_abi_version_0_2_1", ">" },
    [PLX_ON_VM_START] = { "proxy_on_vm_start", "ii>i" },
    [PLX_ON_CONFIGURE] = { "proxy_on_configure", "ii>i" },
    [PLX_ON_CONTEXT_CREATE] = { "proxy_on_context_create", "ii>" },
    [PLX_ON_REQUEST_HEADERS] = { "proxy_on_request_headers", "iii>i" },
    [PLX_ON_RESPONSE_HEADERS] = { "proxy_on_response_headers", "iii>i" },
    [PLX_ON_DONE] = { "proxy_on_done", "i>i" },
    [PLX_ON_LOG] = { "proxy_on_log", "i>" },
    [PLX_ON_DELETE] = { "proxy_on_delete", "i>" },
    [PLX_ON_MEMORY_ALLOCATE] = { "proxy_on_memory_allocate", "i>i" },
    [PLX_MALLOC] = { "malloc", "i>i" },
    [PLX_INITIALIZE] = { "_initialize", ">" },
    [PLX_ON_QUEUE_READY] = { "proxy_on_queue_ready", "ii>" },
    [PLX_ON_HTTP_CALL_RESPONSE] = { "proxy_on_http_call_response", "iiiii>" },
    [PLX_ON_TICK] = { "proxy_on_tick", "i>" },
    [PLX_ON_REQUEST_BODY] = { "proxy_on_request_body", "iii>i" },
    [PLX_ON_RESPONSE_BODY] = { "proxy_on_response_body", "iii>i" },
    [PLX_ON_REQUEST_TRAILERS] = { "proxy_on_request_trailers", "ii>i" },
    [PLX_ON_RESPONSE_TRAILERS] = { "proxy_on_response_trailers", "ii>i" },
};

static void errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *p = malloc(cap + 1);
    while (p) {
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
        char *q = realloc(p, cap + 1);
        if (!q) {
            free(p);
            p = NULL;
        }
        p = q;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!p || bad) {
        free(p);
        return NULL;
    }
    p[n] = '\0';
    *len = n;
    return p;
}

static bool write_all(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static atomic_bool build_stop;

void arc_pl__build_stop(bool on)
{
    atomic_store(&build_stop, on);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs argv (PATH lookup) with stdout/stderr into `log`; 0 = exit status 0.
 * The tool runs in its own process group; past timeout_ms (or when
 * arc_pl__build_stop asks) the group is killed (a compiler driver's own
 * children included) and reaped. */
static int run(char *const argv[], const char *log, uint32_t timeout_ms, char *err,
               size_t err_len)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        errf(err, err_len, "cannot run %s: %s (install wabt and a C compiler)", argv[0],
             strerror(rc));
        return -1;
    }
    int st;
    uint64_t deadline = mono_ms() + timeout_ms;
    unsigned nap_ms = 1;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        bool stop = atomic_load(&build_stop);
        if (stop || mono_ms() >= deadline) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            if (stop)
                errf(err, err_len, "%s stopped: Arc is shutting down", argv[0]);
            else
                errf(err, err_len, "%s did not finish within %u ms (plugins.compile_timeout): "
                     "killed", argv[0], timeout_ms);
            return -1;
        }
        struct timespec ts = { 0, (long)nap_ms * 1000000L };
        nanosleep(&ts, NULL);
        if (nap_ms < 20)
            nap_ms *= 2;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    size_t n = 0;
    char *out = read_all(log, &n);
    /* First line of the tool's complaint is the useful part. */
    char first[200] = "";
    if (out) {
        char *nl = strchr(out, '\n');
        if (nl)
            *nl = '\0';
        snprintf(first, sizeof(first), "%s", out);
    }
    free(out);
    errf(err, err_len, "%s failed: %s", argv[0], first[0] ? first : "(no output)");
    return -1;
}

/* ------------------------------------------------------------ the shim */

struct sb {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->oom = true;
        return;
    }
    sb_put(b, tmp, (size_t)n);
}

/* Forced include of every generated file: wasm2c's configuration, and the
 * stack depth moved from a process global into the instance header. */
static const char prelude[] =
    "#define WASM_RT_MEMCHECK_SIGNAL_HANDLER 0\n"
    "#define WASM_RT_USE_STACK_DEPTH_COUNT 1\n"
    "#define WASM_RT_MAX_CALL_STACK_DEPTH 400\n"
    "#include <wasm-rt.h>\n"
    "struct arc_w2c_hdr { long long fuel; unsigned depth, pad; void *host; char *stack_floor; };\n"
    "#define ARC_W2C_HDR_OFF ((sizeof(Z_m_instance_t) + 15u) & ~(size_t)15u)\n"
    "#define ARC_W2C_HDR(i) ((struct arc_w2c_hdr *)((char *)(i) + ARC_W2C_HDR_OFF))\n"
    "#undef wasm_rt_call_stack_depth\n"
    "#define wasm_rt_call_stack_depth (ARC_W2C_HDR(instance)->depth)\n"
    "void arc_w2c_refuel(struct arc_w2c_hdr *h);\n"
    "#define ARC_FUEL() do { if (__builtin_expect(--ARC_W2C_HDR(instance)->fuel < 0, 0)) "
    "arc_w2c_refuel(ARC_W2C_HDR(instance)); } while (0)\n"
    /* The native stack a call may use: wasm2c frames hold the function's
     * locals, so depth alone does not bound it. */
    "#define ARC_STACK() do { if (__builtin_expect((char *)__builtin_frame_address(0) < "
    "ARC_W2C_HDR(instance)->stack_floor, 0)) wasm_rt_trap(WASM_RT_TRAP_EXHAUSTION); } while (0)\n";

/* The runtime wasm2c's output calls (wasm-rt.h), bounds-checked memory. */
static const char shim_runtime[] =
    "#include <stdlib.h>\n#include <string.h>\n#include <stdarg.h>\n"
    "typedef void (*arc_w2c_fn)(void);\n"
    "struct arc_w2c_host { unsigned abi; void (*trap)(unsigned) __attribute__((noreturn));\n"
    "  void (*refuel)(struct arc_w2c_hdr *); arc_w2c_fn const *fns; };\n"
    "static const struct arc_w2c_host *H;\n"
    "void arc_w2c_refuel(struct arc_w2c_hdr *h) { H->refuel(h); }\n"
    "void wasm_rt_trap(wasm_rt_trap_t c) { H->trap((unsigned)c); }\n"
    "void wasm_rt_init(void) {}\n"
    "bool wasm_rt_is_initialized(void) { return true; }\n"
    "void wasm_rt_free(void) {}\n"
    /* Function types, for call_indirect checks: a fixed table (no heap
     * to leak at dlclose). A type that does not fit gets 0, which no
     * table entry carries: indirect calls to it trap, nothing else. */
    "typedef struct { unsigned np, nr; wasm_rt_type_t t[32]; } ft_t;\n"
    "static ft_t g_ft[1024]; static unsigned g_nft;\n"
    "uint32_t wasm_rt_register_func_type(uint32_t np, uint32_t nr, ...) {\n"
    "  ft_t f = { np, nr, {0} }; va_list ap; va_start(ap, nr);\n"
    "  for (unsigned i = 0; i < np + nr; i++) { wasm_rt_type_t t = va_arg(ap, wasm_rt_type_t);\n"
    "    if (i < 32) f.t[i] = t; }\n"
    "  va_end(ap); if (np + nr > 32) return 0;\n"
    "  for (unsigned i = 0; i < g_nft; i++) if (!memcmp(&g_ft[i], &f, sizeof(f))) return i + 1;\n"
    "  if (g_nft == 1024) return 0;\n"
    "  g_ft[g_nft++] = f; return g_nft; }\n"
    "uint32_t wasm_rt_register_tag(uint32_t s) { H->trap(43); }\n"
    "void wasm_rt_load_exception(uint32_t t, uint32_t s, const void *v) { H->trap(43); }\n"
    "void wasm_rt_throw(void) { H->trap(43); }\n"
    "static jmp_buf *g_unwind;\n"
    "WASM_RT_UNWIND_TARGET *wasm_rt_get_unwind_target(void) { return g_unwind; }\n"
    "void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET *t) { g_unwind = t; }\n"
    "uint32_t wasm_rt_exception_tag(void) { return 0; }\n"
    "uint32_t wasm_rt_exception_size(void) { return 0; }\n"
    "void *wasm_rt_exception(void) { return NULL; }\n"
    "const char *wasm_rt_strerror(wasm_rt_trap_t t) { return \"trap\"; }\n"
    "void wasm_rt_allocate_memory(wasm_rt_memory_t *m, uint32_t pages, uint32_t max) {\n"
    "  if (pages > 65536) H->trap(42);\n"
    "  m->data = calloc((size_t)pages * 65536 + 1, 1); if (!m->data) H->trap(42);\n"
    "  m->pages = pages; m->max_pages = max; m->size = pages * 65536u; }\n"
    "uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *m, uint32_t delta) {\n"
    "  uint32_t old = m->pages; uint64_t np = (uint64_t)old + delta;\n"
    "  if (delta == 0) return old;\n"
    "  if (np > m->max_pages || np > 65536) return (uint32_t)-1;\n"
    "  uint8_t *d = realloc(m->data, (size_t)np * 65536 + 1); if (!d) return (uint32_t)-1;\n"
    "  memset(d + (size_t)old * 65536, 0, (size_t)delta * 65536);\n"
    "  m->data = d; m->pages = (uint32_t)np; m->size = (uint32_t)(np * 65536); return old; }\n"
    "void wasm_rt_free_memory(wasm_rt_memory_t *m) { free(m->data); m->data = NULL; }\n"
    "#define TBL(type) \\\n"
    "void wasm_rt_allocate_##type##_table(wasm_rt_##type##_table_t *t, uint32_t n, uint32_t max) {\\\n"
    "  t->size = n; t->max_size = max; t->data = calloc(n ? n : 1, sizeof(*t->data));\\\n"
    "  if (!t->data) H->trap(42); }\\\n"
    "void wasm_rt_free_##type##_table(wasm_rt_##type##_table_t *t) { free(t->data); t->data = NULL; }\\\n"
    "uint32_t wasm_rt_grow_##type##_table(wasm_rt_##type##_table_t *t, uint32_t d, wasm_rt_##type##_t v) {\\\n"
    "  uint32_t old = t->size; uint64_t nn = (uint64_t)old + d;\\\n"
    "  if (nn > t->max_size || nn > 10000000) return (uint32_t)-1; if (d == 0) return old;\\\n"
    "  void *p = realloc(t->data, nn * sizeof(*t->data)); if (!p) return (uint32_t)-1;\\\n"
    "  t->data = p; for (uint64_t i = old; i < nn; i++) t->data[i] = v; t->size = (uint32_t)nn;\\\n"
    "  return old; }\n"
    "TBL(funcref)\nTBL(externref)\n";

/* "u32" → 'i', "u64" → 'I', "f32" → 'f', "f64" → 'F', "void" → 0. */
static char type_code(const char *t, size_t n)
{
    if (n == 3 && memcmp(t, "u32", 3) == 0)
        return 'i';
    if (n == 3 && memcmp(t, "u64", 3) == 0)
        return 'I';
    if (n == 3 && memcmp(t, "f32", 3) == 0)
        return 'f';
    if (n == 3 && memcmp(t, "f64", 3) == 0)
        return 'F';
    return '?';
}

static const char *c_type(char c)
{
    switch (c) {
    case 'i': return "u32";
    case 'I': return "u64";
    case 'f': return "f32";
    case 'F': return "f64";
    }
    return "void";
}

/* A function declaration of wasm2c's header: "RET IDENT(FIRST*, T, T);".
 * Writes the identifier and the signature ("TT>R"). False: not a
 * function of plain value types (an imported memory, table or global). */
static bool parse_decl(const char *line, char *ident, size_t ilen, char *sig, size_t slen)
{
    const char *sp = strchr(line, ' ');
    const char *lp = strchr(line, '(');
    if (!sp || !lp || sp > lp)
        return false;
    char rc = 0;
    if (!(sp - line == 4 && memcmp(line, "void", 4) == 0)) {
        rc = type_code(line, (size_t)(sp - line));
        if (rc == '?')
            return false;
    }
    size_t il = (size_t)(lp - sp - 1);
    if (il == 0 || il >= ilen)
        return false;
    memcpy(ident, sp + 1, il);
    ident[il] = '\0';
    const char *p = strchr(lp, ',');
    const char *end = strchr(lp, ')');
    if (!end)
        return false;
    size_t k = 0;
    while (p && p < end) {
        p++;
        while (*p == ' ')
            p++;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        char c = type_code(p, (size_t)(q - p));
        if (c == '?' || k + 3 >= slen)
            return false;
        sig[k++] = c;
        p = q < end ? q : NULL;
    }
    sig[k++] = '>';
    if (rc)
        sig[k++] = rc;
    sig[k] = '\0';
    return true;
}

/* Generates shim.c from wasm2c's header text. */
static int gen_shim(const char *h, struct sb *out, char *err, size_t err_len)
{
    char expfn[PLX__COUNT][256];
    memset(expfn, 0, sizeof(expfn));
    size_t n_import_mods = 0;
    bool has_memory = false;
    sb_put(out, shim_runtime, sizeof(shim_runtime) - 1);
    const char *p = h;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        char line[512];
        if (ll >= sizeof(line))
            ll = sizeof(line) - 1;
        memcpy(line, p, ll);
        line[ll] = '\0';
        p = nl ? nl + 1 : NULL;
        char mod[128], name[128];
        if (strncmp(line, "void Z_m_instantiate(", 21) == 0) {
            for (const char *c = line; *c; c++)
                n_import_mods += *c == ',';
            continue;
        }
        bool imp = sscanf(line, "/* import: '%127[^']' '%127[^']' */", mod, name) == 2;
        bool exp = !imp && sscanf(line, "/* export: '%127[^']' */", name) == 1;
        if (!imp && !exp)
            continue;
        /* The declaration follows on the next line. */
        const char *nl2 = p ? strchr(p, '\n') : NULL;
        size_t dl = p ? (nl2 ? (size_t)(nl2 - p) : strlen(p)) : 0;
        char decl[512];
        if (dl >= sizeof(decl))
            dl = sizeof(decl) - 1;
        memcpy(decl, p ? p : "", dl);
        decl[dl] = '\0';
        char ident[256], sig[40];
        bool fn = parse_decl(decl, ident, sizeof(ident), sig, sizeof(sig));
        if (exp) {
            if (strcmp(name, "memory") == 0) {
                has_memory = strstr(decl, "wasm_rt_memory_t*") != NULL;
                continue;
            }
            for (int e = 0; e < PLX__COUNT; e++) {
                if (strcmp(name, arc_pl__exports[e].name) != 0)
                    continue;
                if (!fn || strcmp(sig, arc_pl__exports[e].sig) != 0) {
                    errf(err, err_len, "export '%s' has the wrong signature (expected %s)",
                         name, arc_pl__exports[e].sig);
                    return -1;
                }
                snprintf(expfn[e], sizeof(expfn[e]), "%s", ident);
            }
            continue;
        }
        if (!fn) {
            errf(err, err_len, "imports %s.%s, which is not a function (Arc provides only "
                 "functions)", mod, name);
            return -1;
        }
        /* The forwarder: the env instance pointer wasm2c passes is the
         * host's instance (see instantiate below). */
        char *gt = strchr(sig, '>');
        char rc = gt[1];
        size_t np = (size_t)(gt - sig);
        /* First parameter: wasm2c's "struct Z_<mod>_instance_t*". */
        const char *lp = strchr(decl, '('), *ep = lp ? strpbrk(lp, ",)") : NULL;
        if (!lp || !ep || ep - lp > 200) {
            errf(err, err_len, "unexpected wasm2c declaration for %s.%s", mod, name);
            return -1;
        }
        sb_printf(out, "%s %s(%.*s e", c_type(rc), ident, (int)(ep - lp - 1), lp + 1);
        for (size_t i = 0; i < np; i++)
            sb_printf(out, ", %s a%zu", c_type(sig[i]), i);
        sb_put(out, ") {\n", 4);
        int idx = -1;
        for (int k = 0; k < ARC_PL_IMPORTS; k++)
            if (arc_pl__imports[k].name && strcmp(arc_pl__imports[k].name, name) == 0 &&
                (strcmp(mod, "env") == 0 ||
                 (strcmp(mod, "wasi_unstable") == 0 && strcmp(name, "proc_exit") == 0) ||
                 (strcmp(mod, "wasi_snapshot_preview1") == 0 && strcmp(name, "proc_exit") == 0)))
                idx = k;
        if (idx >= 0 && strcmp(arc_pl__imports[idx].sig, sig) != 0) {
            errf(err, err_len, "import %s.%s has the wrong signature (expected %s)", mod, name,
                 arc_pl__imports[idx].sig);
            return -1;
        }
        if (idx >= 0) {
            sb_printf(out, "  %s((%s (*)(void *", rc ? "return " : "", c_type(rc));
            for (size_t i = 0; i < np; i++)
                sb_printf(out, ", %s", c_type(sig[i]));
            sb_printf(out, "))H->fns[%d])((void *)e", idx);
            for (size_t i = 0; i < np; i++)
                sb_printf(out, ", a%zu", i);
            sb_put(out, ");\n}\n", 5);
        } else if (rc == 'i') {
            /* A call Arc does not implement: the ABI's Unimplemented. */
            sb_put(out, "  return 12;\n}\n", 15);
        } else {
            sb_put(out, "  H->trap(43);\n}\n", 17);
        }
    }
    if (!has_memory) {
        errf(err, err_len, "the module exports no memory named 'memory'");
        return -1;
    }
    if (!expfn[PLX_ABI_0_2_0][0] && !expfn[PLX_ABI_0_2_1][0]) {
        errf(err, err_len, "not a proxy-wasm 0.2.0/0.2.1 module (no proxy_abi_version_0_2_0 "
             "or proxy_abi_version_0_2_1 export)");
        return -1;
    }
    if (!expfn[PLX_ON_MEMORY_ALLOCATE][0] && !expfn[PLX_MALLOC][0]) {
        errf(err, err_len, "the module exports neither proxy_on_memory_allocate nor malloc");
        return -1;
    }
    /* A module loaded again (the same object in a new snapshot, while
     * workers still run the old one's instances) writes nothing: its host
     * table and function types are set once per load of the object. */
    sb_printf(out, "static void set_host(const struct arc_w2c_host *h) { if (H != h) H = h; }\n"
              "static void init_once(void) { static int done; if (!done) { Z_m_init_module(); "
              "done = 1; } }\n");
    sb_put(out, "static void inst(void *i, void *h) { Z_m_instantiate(i", 54);
    for (size_t i = 0; i < n_import_mods; i++)
        sb_put(out, ", h", 3);
    sb_put(out, "); }\n", 5);
    sb_put(out, "static void ifree(void *i) { Z_m_free(i); }\n", 45);
    sb_put(out, "static void *imem(void *i) { return Z_mZ_memory(i); }\n", 55);
    sb_printf(out, "__attribute__((visibility(\"default\"))) const struct {\n"
              "  unsigned abi, hdr_off, inst_size;\n"
              "  void (*set_host)(const struct arc_w2c_host *);\n"
              "  void (*init_module)(void); void (*instantiate)(void *, void *);\n"
              "  void (*free)(void *); void *(*memory)(void *);\n"
              "  arc_w2c_fn exports[%d];\n"
              "} arc_w2c_module_v1 = { %d, ARC_W2C_HDR_OFF, ARC_W2C_HDR_OFF + "
              "sizeof(struct arc_w2c_hdr),\n  set_host, init_once, inst, ifree, imem, {\n",
              PLX__COUNT, ARC_W2C_ABI);
    for (int e = 0; e < PLX__COUNT; e++)
        sb_printf(out, "    %s%s,\n", expfn[e][0] ? "(arc_w2c_fn)" : "", expfn[e][0] ? expfn[e] : "0");
    sb_put(out, "} };\n", 5);
    if (out->oom) {
        errf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

/* Inserts the fuel check at every function entry and backward branch. */
static int rewrite_gen(const char *c, struct sb *out, char *err, size_t err_len)
{
    size_t prologues = 0;
    const char *p = c;
    for (;;) {
        const char *a = strstr(p, "FUNC_PROLOGUE;");
        const char *b = strstr(p, "goto w2c_L");
        const char *next = a && (!b || a < b) ? a : b;
        if (!next)
            break;
        sb_put(out, p, (size_t)(next - p));
        if (next == a) {
            sb_put(out, "FUNC_PROLOGUE; ARC_FUEL(); ARC_STACK();", 39);
            prologues++;
            p = a + 14;
        } else {
            const char *semi = strchr(b, ';');
            if (!semi) {
                errf(err, err_len, "unexpected wasm2c output (goto without ';')");
                return -1;
            }
            sb_put(out, "{ ARC_FUEL(); ", 14);
            sb_put(out, b, (size_t)(semi + 1 - b));
            sb_put(out, " }", 2);
            p = semi + 1;
        }
    }
    sb_put(out, p, strlen(p));
    /* A module with functions always has prologues; without them this is
     * not the wasm2c output the budget was built against. */
    if (!prologues && (strstr(c, "static u32 w2c_") || strstr(c, "static void w2c_"))) {
        errf(err, err_len, "unexpected wasm2c output (no FUNC_PROLOGUE): the CPU budget "
             "cannot be enforced");
        return -1;
    }
    if (out->oom) {
        errf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ cache */

static int check_dir(const char *dir, char *err, size_t err_len)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
                break;
            *s = '/';
        }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
        errf(err, err_len, "plugin cache %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        errf(err, err_len, "plugin cache %s: not a directory", dir);
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022)) {
        errf(err, err_len, "plugin cache %s must belong to this user and not be writable by "
             "group or others (it holds code Arc loads)", dir);
        return -1;
    }
    return 0;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            if ((size_t)snprintf(path, sizeof(path), "%.3800s/%.250s", dir, e->d_name) <
                sizeof(path))
                unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

int arc_pl__cached(const char *wasm_path, const char *cache_dir, char *so_path, size_t so_len,
                   char hex[65], char *err, size_t err_len)
{
    size_t wlen = 0;
    char *wasm = read_all(wasm_path, &wlen);
    if (!wasm) {
        errf(err, err_len, "cannot read %s: %s", wasm_path, strerror(errno ? errno : EIO));
        return -1;
    }
    if (wlen < 8 || memcmp(wasm, "\0asm", 4) != 0) {
        free(wasm);
        errf(err, err_len, "%s is not a WebAssembly module", wasm_path);
        return -1;
    }
    unsigned char md[32];
    unsigned mdl = 0;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    bool ok = mc && EVP_DigestInit_ex(mc, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(mc, wasm, wlen) &&
              EVP_DigestUpdate(mc, GEN_VERSION, sizeof(GEN_VERSION)) &&
              EVP_DigestFinal_ex(mc, md, &mdl);
    EVP_MD_CTX_free(mc);
    free(wasm);
    if (!ok) {
        errf(err, err_len, "SHA-256 failed");
        return -1;
    }
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (check_dir(cache_dir, err, err_len) < 0)
        return -1;
    if ((size_t)snprintf(so_path, so_len, "%s/%s.so", cache_dir, hex) >= so_len) {
        errf(err, err_len, "plugin cache path too long");
        return -1;
    }
    return access(so_path, R_OK) == 0 ? 1 : 0;
}

int arc_pl__build(const char *wasm_path, const char *cache_dir, uint32_t timeout_ms,
                  char *so_path, size_t so_len, char *err, size_t err_len)
{
    char hex[65];
    int cached = arc_pl__cached(wasm_path, cache_dir, so_path, so_len, hex, err, err_len);
    if (cached != 0)
        return cached < 0 ? -1 : 0;

    char tdir[4096];
    snprintf(tdir, sizeof(tdir), "%s/build.XXXXXX", cache_dir);
    if (!mkdtemp(tdir)) {
        errf(err, err_len, "plugin cache %s: %s", cache_dir, strerror(errno));
        return -1;
    }
    char gen_c[4200], gen_h[4200], gen2_c[4200], shim_c[4200], pre_h[4200], log[4200],
        out_so[4200];
    snprintf(gen_c, sizeof(gen_c), "%s/m.c", tdir);
    snprintf(gen_h, sizeof(gen_h), "%s/m.h", tdir);
    snprintf(gen2_c, sizeof(gen2_c), "%s/mf.c", tdir);
    snprintf(shim_c, sizeof(shim_c), "%s/shim.c", tdir);
    snprintf(pre_h, sizeof(pre_h), "%s/prelude.h", tdir);
    snprintf(log, sizeof(log), "%s/log", tdir);
    snprintf(out_so, sizeof(out_so), "%s/m.so", tdir);
    int rc = -1;
    char *h = NULL, *c = NULL;
    struct sb shim = { 0 }, gen = { 0 };
    char *w2c[] = { "wasm2c", "-n", "m", (char *)wasm_path, "-o", gen_c, NULL };
    if (run(w2c, log, timeout_ms, err, err_len) < 0)
        goto out;
    size_t hl, cl;
    if (!(h = read_all(gen_h, &hl)) || !(c = read_all(gen_c, &cl))) {
        errf(err, err_len, "wasm2c produced no output");
        goto out;
    }
    if (gen_shim(h, &shim, err, err_len) < 0 || rewrite_gen(c, &gen, err, err_len) < 0)
        goto out;
    char shim_head[300];
    int shl = snprintf(shim_head, sizeof(shim_head), "#include \"m.h\"\n");
    struct sb full = { 0 };
    sb_put(&full, shim_head, (size_t)shl);
    sb_put(&full, shim.p, shim.n);
    if (full.oom || !write_all(shim_c, full.p, full.n) || !write_all(gen2_c, gen.p, gen.n) ||
        !write_all(pre_h, prelude, sizeof(prelude) - 1)) {
        free(full.p);
        errf(err, err_len, "cannot write into %s", tdir);
        goto out;
    }
    free(full.p);
    const char *cc = getenv("ARC_PLUGIN_CC");
    char *ccv[] = { (char *)(cc && *cc ? cc : "cc"), CC_FLAGS, "-include", pre_h, "-I", tdir,
                    "-o", out_so, gen2_c, shim_c, "-Wl,-z,defs", "-lm", NULL };
    if (run(ccv, log, timeout_ms, err, err_len) < 0)
        goto out;
    if (rename(out_so, so_path) < 0) {
        errf(err, err_len, "cannot move the object into %s: %s", cache_dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(h);
    free(c);
    free(shim.p);
    free(gen.p);
    rm_tree(tdir);
    return rc;
}
