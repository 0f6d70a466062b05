/*
 * Fuzz target for the TOML reader (src/config/toml.c): the input is a TOML
 * document. Besides the checks every config reader gets (config_fuzz.h:
 * error positions inside the input, tree invariants, canonical JSON as a
 * fixed point, the tree written back as inline TOML and as [header] TOML
 * reading to the same canonical JSON), a second read of the same bytes must
 * give the same errors in the same order (the reader keeps no state between
 * reads and its table bookkeeping does not depend on addresses).
 *
 * Built two ways (Makefile): with clang -fsanitize=fuzzer for exploration,
 * and with tests/fuzz/replay_main.c under gcc ASan to replay the corpus.
 */
#include "config_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run(arc_config__read_toml, data, size);

    struct fz_read a, b;
    fz_read(&a, arc_config__read_toml, (const char *)data, size);
    fz_read(&b, arc_config__read_toml, (const char *)data, size);
    REQUIRE(a.rc == b.rc && a.e.n == b.e.n);
    for (size_t i = 0; i < a.e.n; i++)
        REQUIRE(a.e.v[i].line == b.e.v[i].line && a.e.v[i].col == b.e.v[i].col &&
                strcmp(a.e.v[i].msg, b.e.v[i].msg) == 0);
    fz_done(&a);
    fz_done(&b);
    return 0;
}
