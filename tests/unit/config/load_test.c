/* Proves the file entry point: format by extension (YAML, JSON, TOML),
 * exact messages for unreadable files, the printed "FILE:LINE:COL: error:
 * MSG" form, errors appended after earlier ones, and that both shipped
 * examples load — the quick start giving the same fingerprint as its JSON
 * translation. */
#include <stdlib.h>
#include <unistd.h>

#include "config_test.h"

/* Prints the errors into a string (caller frees). */
static char *printed(const struct arc_config_errors *e)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    arc_config_errors_print(e, f);
    fclose(f);
    return buf;
}

/* Writes `text` to a fresh temp file ending in `suffix`; returns its path. */
static char *temp_file(const char *suffix, const char *text)
{
    char *path;
    if (asprintf(&path, "/tmp/arc-config-test-XXXXXX%s", suffix) < 0)
        abort();
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0)
        abort();
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n)
        abort();
    close(fd);
    return path;
}

static void test_missing_file(void)
{
    struct arc_config_errors e = { 0 };
    struct arc_config *c = (struct arc_config *)&e; /* must be reset to NULL */
    CHECK_INT(arc_config_load_file("/nonexistent/arc.yaml", &c, &e), -1);
    CHECK(c == NULL);
    CHECK_INT(e.n, 1);
    char *s = printed(&e);
    CHECK_STR(s, "/nonexistent/arc.yaml: error: cannot open: No such file or directory\n");
    free(s);
    arc_config_errors_dispose(&e);

    CHECK_INT(arc_config_load_file("/tmp", &c, &e), -1);
    s = printed(&e);
    CHECK_STR(s, "/tmp: error: cannot read: Is a directory\n");
    free(s);
    arc_config_errors_dispose(&e);
}

static void test_extensions(void)
{
    struct arc_config_errors e = { 0 };
    struct arc_config *c;
    /* .toml is read as TOML: YAML in it is a TOML syntax error */
    char *p = temp_file(".toml",
                        "[[listeners]]\nname = \"http\"\nkind = \"http\"\nbind = \"127.0.0.1:0\"\n"
                        "[[upstreams]]\nname = \"app\"\n"
                        "discovery = { type = \"static\", endpoints = [{ address = \"127.0.0.1:3000\" }] }\n");
    CHECK_INT(arc_config_load_file(p, &c, &e), 0);
    CHECK_INT(e.n, 0);
    if (c)
        CHECK_INT(c->n_upstreams, 1);
    arc_config_free(c);
    unlink(p);
    free(p);
    p = temp_file(".TOML", MINI_YAML);
    CHECK_INT(arc_config_load_file(p, &c, &e), -1);
    CHECK_INT(e.n, 1);
    CHECK_ERR(&e, 1, 10, "TOML syntax error: expected '=' after the key, found ':'");
    arc_config_errors_dispose(&e);
    unlink(p);
    free(p);

    p = temp_file(".conf", MINI_YAML);
    CHECK_INT(arc_config_load_file(p, &c, &e), -1);
    CHECK_ERR(&e, 0, 0, "unknown configuration format (the file name must end in .yaml, .yml, "
              ".json or .toml)");
    arc_config_errors_dispose(&e);
    unlink(p);
    free(p);

    /* .YML in capitals is YAML; .json is read as JSON (so YAML fails) */
    p = temp_file(".YML", MINI_YAML);
    CHECK_INT(arc_config_load_file(p, &c, &e), 0);
    CHECK_INT(e.n, 0);
    CHECK_STR(c->source, p);
    arc_config_free(c);
    unlink(p);
    free(p);

    p = temp_file(".json", MINI_YAML);
    CHECK_INT(arc_config_load_file(p, &c, &e), -1);
    CHECK_ERR(&e, 1, 1, "JSON syntax error: expected a value, found 'l'");
    arc_config_errors_dispose(&e);
    unlink(p);
    free(p);
}

static void test_printed_form(void)
{
    char *p = temp_file(".yaml",
                        "listeners:\n"
                        "  - name: http\n"
                        "    kind: http\n"
                        "    bind: \"127.0.0.1:0\"\n"
                        "    bakclog: 5\n"
                        "node: {workers: x}\n");
    struct arc_config_errors e = { 0 };
    struct arc_config *c;
    CHECK_INT(arc_config_load_file(p, &c, &e), -1);
    char *s = printed(&e), *want;
    if (asprintf(&want,
                 "%s:5:5: error: unknown key 'bakclog' in listeners[0]\n"
                 "%s:6:17: error: node.workers: expected an integer, got string\n", p, p) < 0)
        abort();
    CHECK_STR(s, want);
    free(want);
    free(s);
    arc_config_errors_dispose(&e);
    unlink(p);
    free(p);

    /* a YAML syntax error in a file carries the file's name and position */
    p = temp_file(".yaml", "listeners:\n  - name: [a\n");
    CHECK_INT(arc_config_load_file(p, &c, &e), -1);
    CHECK_INT(e.n, 1);
    CHECK(e.n == 1 && strcmp(e.v[0].file, p) == 0 && e.v[0].line == 3);
    arc_config_errors_dispose(&e);
    unlink(p);
    free(p);
}

static void test_append_and_embedded_name(void)
{
    /* a load appends after what the caller already holds and sorts only
     * its own errors */
    struct arc_config_errors e = { 0 };
    struct arc_config *c;
    CHECK_INT(arc_config_load_file("/nonexistent.yaml", &c, &e), -1);
    const char *text = "node: {workers: x}\nfoo: 1\n";
    CHECK_INT(arc_config_load_string(text, strlen(text), NULL, NULL, &c, &e), -1);
    CHECK(c == NULL);
    CHECK_INT(e.n, 4);
    if (e.n == 4) {
        CHECK_STR(e.v[0].file, "/nonexistent.yaml");
        CHECK_STR(e.v[1].file, "<embedded>");
        CHECK_INT(e.v[1].line, 1);  /* missing listeners, at the root */
        CHECK_INT(e.v[2].line, 1);
        CHECK_INT(e.v[2].col, 17);
        CHECK_INT(e.v[3].line, 2);
    }
    arc_config_errors_dispose(&e);

    /* an unknown format name reads YAML; the source is the given name */
    CHECK_INT(arc_config_load_string(MINI_YAML, strlen(MINI_YAML), NULL, "whatever", &c, &e), 0);
    CHECK_STR(c->source, "<embedded>");
    arc_config_free(c);
    arc_config_free(NULL);

    /* no text at all is an empty document, not a crash */
    CHECK_INT(arc_config_load_string(NULL, 0, "x.json", "json", &c, &e), -1);
    CHECK_ERR(&e, 0, 0, "configuration is empty");
    arc_config_errors_dispose(&e);
}

static void test_examples(void)
{
    struct arc_config_errors e = { 0 };
    struct arc_config *q = NULL, *full = NULL;
    CHECK_INT(arc_config_load_file("examples/quickstart.yaml", &q, &e), 0);
    arc_config_errors_print(&e, stderr);
    CHECK_INT(e.n, 0);
    if (q) {
        CHECK_INT(q->n_listeners, 1);
        CHECK_STR(q->listeners[0].bind.text, "127.0.0.1:8080");
        CHECK_INT(q->n_upstreams, 1);
        CHECK_INT(q->n_routes, 1);
        CHECK_STR(q->routes[0].path, "/{*rest}");
        CHECK_INT(q->routes[0].upstream_index, 0);
    }
    /* the same document in JSON, written differently, hashes the same */
    char *p = temp_file(".json",
        "{\"routes\": [{\"name\": \"root\", \"action\": {\"upstream\": \"app\"},\n"
        "              \"match\": {\"path\": \"/{*rest}\"}}],\n"
        " \"upstreams\": [{\"name\": \"app\", \"discovery\": {\"type\": \"static\",\n"
        "                \"endpoints\": [{\"address\": \"127.0.0.1:3000\"}]}}],\n"
        " \"listeners\": [{\"name\": \"http\", \"kind\": \"http\", \"bind\": \"127.0.0.1:8080\"}]}\n");
    struct arc_config *j = NULL;
    CHECK_INT(arc_config_load_file(p, &j, &e), 0);
    arc_config_errors_print(&e, stderr);
    if (q && j) {
        CHECK_STR(j->fingerprint, q->fingerprint);
        CHECK_STR(j->canonical_json, q->canonical_json);
    }
    unlink(p);
    free(p);

    CHECK_INT(arc_config_load_file("examples/arc.yaml", &full, &e), 0);
    arc_config_errors_print(&e, stderr);
    if (full) {
        CHECK_STR(full->node.id, "edge-1");
        CHECK_INT(full->n_listeners, 2);
        CHECK(full->listeners[0].keepalive_enabled);
        CHECK_INT(full->n_upstreams, 2);
        CHECK_INT(full->n_routes, 4);
        CHECK_INT(full->routes[0].n_trusted_proxies, 2);
        CHECK_INT(full->routes[3].upstream_index, 1);
        CHECK_INT(full->routes[1].action, ARC_ACTION_REDIRECT);
        CHECK_INT(full->routes[2].action, ARC_ACTION_RESPOND);
    }
    arc_config_free(q);
    arc_config_free(j);
    arc_config_free(full);
    arc_config_errors_dispose(&e);
}

int main(void)
{
    RUN(test_missing_file);
    RUN(test_extensions);
    RUN(test_printed_form);
    RUN(test_append_and_embedded_name);
    RUN(test_examples);
    return TEST_REPORT();
}
