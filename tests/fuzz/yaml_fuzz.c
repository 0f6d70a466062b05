/*
 * Fuzz target for the YAML reader (src/config/yaml.c, over libyaml): the
 * input is a YAML document, put through the checks every config reader
 * gets (config_fuzz.h): error positions inside the input, tree invariants
 * (which here also cover what libyaml hands over: valid UTF-8, no NUL in
 * keys), canonical JSON as a fixed point, and every mapping-rooted document
 * without null written as TOML (inline and with [headers]) reading back to
 * the same canonical JSON.
 *
 * Built two ways (Makefile): with clang -fsanitize=fuzzer for exploration,
 * and with tests/fuzz/replay_main.c under gcc ASan to replay the corpus.
 */
#include "config_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run(arc_config__read_yaml, data, size);
    return 0;
}
