/* Proves the TOML reader reads TOML 1.0.0 into the same tree as the other
 * readers: every example the specification (toml.io/en/v1.0.0) shows as
 * valid gives the JSON an independent TOML reader gives for it (Python's
 * tomllib, with date-times as RFC 3339 strings), every example it marks
 * invalid fails at the right line:col with a clear message, the edges of
 * strings, numbers, dates, positions and limits hold, and the same Arc
 * config written in YAML, JSON and TOML has one canonical JSON and one
 * fingerprint. */
#include "config_test.h"
#include "config/tree_int.h"

struct rd {
    struct arc_ctree t;
    struct arc_config_errors e;
    struct arc_conf_diag d;
    int rc;
};

static void rd_toml_n(struct rd *r, const char *text, size_t len)
{
    memset(r, 0, sizeof(*r));
    arc_config__diag_init(&r->d, &r->e, "t.toml");
    r->rc = arc_config__read_toml(text, len, &r->t, &r->d);
    arc_config__diag_finish(&r->d);
    /* the reader's contract: an error fails the read and leaves no tree */
    CHECK((r->rc == 0) == (r->e.n == 0));
    if (r->rc != 0)
        CHECK(r->t.root == NULL);
}

static void rd_toml(struct rd *r, const char *text)
{
    rd_toml_n(r, text, strlen(text));
}

static void rd_done(struct rd *r)
{
    arc_config__tree_free(&r->t);
    arc_config_errors_dispose(&r->e);
}

static const struct arc_cn *at(const struct arc_cn *map, const char *key)
{
    const struct arc_cn *n = arc_config__get(map, key);
    if (!n)
        fprintf(stderr, "missing key %s\n", key);
    return n;
}

/* Canonical JSON of a TOML document (caller frees), or NULL after printing
 * the errors. */
static char *canon_toml(const char *name, const char *text)
{
    struct rd r;
    char *json = NULL, hex[65];
    rd_toml(&r, text);
    if (r.rc != 0) {
        fprintf(stderr, "%s: unexpected errors:\n", name);
        arc_config_errors_print(&r.e, stderr);
    } else if (arc_config__canonicalize(r.t.root, &json, hex) < 0) {
        fprintf(stderr, "%s: cannot canonicalise\n", name);
    }
    rd_done(&r);
    return json;
}

/* ------------------------------------------------------------ the spec */

/* Every TOML example of the 1.0.0 specification shown as valid, one
 * document each (blocks that define the same key twice in the spec are
 * split). Expected: tomllib's reading of the same text, in canonical form. */
static const struct {
    const char *name, *toml, *json;
} spec_valid[] = {
    { "comment",
        "# This is a full-line comment\n"
        "key = \"value\"  # This is a comment at the end of a line\n"
        "another = \"# This is not a comment\"\n",
        "{\"another\":\"# This is not a comment\",\"key\":\"value\"}" },
    { "keyval",
        "key = \"value\"\n",
        "{\"key\":\"value\"}" },
    { "bare_keys",
        "key = \"value\"\n"
        "bare_key = \"value\"\n"
        "bare-key = \"value\"\n"
        "1234 = \"value\"\n",
        "{\"1234\":\"value\",\"bare-key\":\"value\",\"bare_key\":\"value\",\"key\":\"value\"}" },
    { "quoted_keys",
        "\"127.0.0.1\" = \"value\"\n"
        "\"character encoding\" = \"value\"\n"
        "\"\xca\x8e\xc7\x9d\xca\x9e\" = \"value\"\n"
        "'key2' = \"value\"\n"
        "'quoted \"value\"' = \"value\"\n",
        "{\"127.0.0.1\":\"value\",\"character encoding\":\"value\",\"key2\":\"value\",\"quote"
        "d \\\"value\\\"\":\"value\",\"\\u028E\\u01DD\\u029E\":\"value\"}" },
    { "empty_quoted_key_basic",
        "\"\" = \"blank\"     # VALID but discouraged\n",
        "{\"\":\"blank\"}" },
    { "empty_quoted_key_literal",
        "'' = 'blank'     # VALID but discouraged\n",
        "{\"\":\"blank\"}" },
    { "dotted_keys",
        "name = \"Orange\"\n"
        "physical.color = \"orange\"\n"
        "physical.shape = \"round\"\n"
        "site.\"google.com\" = true\n",
        "{\"name\":\"Orange\",\"physical\":{\"color\":\"orange\",\"shape\":\"round\"},\"site"
        "\":{\"google.com\":true}}" },
    { "dotted_key_whitespace",
        "fruit.name = \"banana\"     # this is best practice\n"
        "fruit. color = \"yellow\"    # same as fruit.color\n"
        "fruit . flavor = \"banana\"   # same as fruit.flavor\n",
        "{\"fruit\":{\"color\":\"yellow\",\"flavor\":\"banana\",\"name\":\"banana\"}}" },
    { "dotted_key_extend",
        "# This makes the key \"fruit\" into a table.\n"
        "fruit.apple.smooth = true\n"
        "\n"
        "# So then you can add to the table \"fruit\" like so:\n"
        "fruit.orange = 2\n",
        "{\"fruit\":{\"apple\":{\"smooth\":true},\"orange\":2}}" },
    { "dotted_out_of_order",
        "# VALID BUT DISCOURAGED\n"
        "\n"
        "apple.type = \"fruit\"\n"
        "orange.type = \"fruit\"\n"
        "\n"
        "apple.skin = \"thin\"\n"
        "orange.skin = \"thick\"\n"
        "\n"
        "apple.color = \"red\"\n"
        "orange.color = \"orange\"\n",
        "{\"apple\":{\"color\":\"red\",\"skin\":\"thin\",\"type\":\"fruit\"},\"orange\":{\"co"
        "lor\":\"orange\",\"skin\":\"thick\",\"type\":\"fruit\"}}" },
    { "dotted_recommended",
        "# RECOMMENDED\n"
        "\n"
        "apple.type = \"fruit\"\n"
        "apple.skin = \"thin\"\n"
        "apple.color = \"red\"\n"
        "\n"
        "orange.type = \"fruit\"\n"
        "orange.skin = \"thick\"\n"
        "orange.color = \"orange\"\n",
        "{\"apple\":{\"color\":\"red\",\"skin\":\"thin\",\"type\":\"fruit\"},\"orange\":{\"co"
        "lor\":\"orange\",\"skin\":\"thick\",\"type\":\"fruit\"}}" },
    { "float_like_key",
        "3.14159 = \"pi\"\n",
        "{\"3\":{\"14159\":\"pi\"}}" },
    { "basic_string",
        "str = \"I'm a string. \\\"You can quote me\\\". Name\\tJos\\u00E9\\nLocation\\tSF.\""
        "\n",
        "{\"str\":\"I'm a string. \\\"You can quote me\\\". Name\\tJos\\u00E9\\nLocation\\tSF"
        ".\"}" },
    { "multiline_basic",
        "str1 = \"\"\"\n"
        "Roses are red\n"
        "Violets are blue\"\"\"\n",
        "{\"str1\":\"Roses are red\\nViolets are blue\"}" },
    { "multiline_equivalents",
        "# On a Unix system, the above multi-line string will most likely be the same as:\n"
        "str2 = \"Roses are red\\nViolets are blue\"\n"
        "\n"
        "# On a Windows system, it will most likely be equivalent to:\n"
        "str3 = \"Roses are red\\r\\nViolets are blue\"\n",
        "{\"str2\":\"Roses are red\\nViolets are blue\",\"str3\":\"Roses are red\\r\\nViolets"
        " are blue\"}" },
    { "line_ending_backslash",
        "# The following strings are byte-for-byte equivalent:\n"
        "str1 = \"The quick brown fox jumps over the lazy dog.\"\n"
        "\n"
        "str2 = \"\"\"\n"
        "The quick brown \\\n"
        "\n"
        "\n"
        "  fox jumps over \\\n"
        "    the lazy dog.\"\"\"\n"
        "\n"
        "str3 = \"\"\"\\\n"
        "       The quick brown \\\n"
        "       fox jumps over \\\n"
        "       the lazy dog.\\\n"
        "       \"\"\"\n",
        "{\"str1\":\"The quick brown fox jumps over the lazy dog.\",\"str2\":\"The quick brow"
        "n fox jumps over the lazy dog.\",\"str3\":\"The quick brown fox jumps over the lazy "
        "dog.\"}" },
    { "multiline_quotes",
        "str4 = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"\n"
        "# str5 = \"\"\"Here are three quotation marks: \"\"\".\"\"\"  # INVALID\n"
        "str5 = \"\"\"Here are three quotation marks: \"\"\\\".\"\"\"\n"
        "str6 = \"\"\"Here are fifteen quotation marks: \"\"\\\"\"\"\\\"\"\"\\\"\"\"\\\"\"\""
        "\\\".\"\"\"\n"
        "\n"
        "# \"This,\" she said, \"is just a pointless statement.\"\n"
        "str7 = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"\n",
        "{\"str4\":\"Here are two quotation marks: \\\"\\\". Simple enough.\",\"str5\":\"Here"
        " are three quotation marks: \\\"\\\"\\\".\",\"str6\":\"Here are fifteen quotation ma"
        "rks: \\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\".\",\"str7\":\"\\\""
        "This,\\\" she said, \\\"is just a pointless statement.\\\"\"}" },
    { "literal_strings",
        "# What you see is what you get.\n"
        "winpath  = 'C:\\Users\\nodejs\\templates'\n"
        "winpath2 = '\\\\ServerX\\admin$\\system32\\'\n"
        "quoted   = 'Tom \"Dubs\" Preston-Werner'\n"
        "regex    = '<\\i\\c*\\s*>'\n",
        "{\"quoted\":\"Tom \\\"Dubs\\\" Preston-Werner\",\"regex\":\"<\\\\i\\\\c*\\\\s*>\",\""
        "winpath\":\"C:\\\\Users\\\\nodejs\\\\templates\",\"winpath2\":\"\\\\\\\\ServerX\\\\a"
        "dmin$\\\\system32\\\\\"}" },
    { "multiline_literal",
        "regex2 = '''I [dw]on't need \\d{2} apples'''\n"
        "lines  = '''\n"
        "The first newline is\n"
        "trimmed in raw strings.\n"
        "   All other whitespace\n"
        "   is preserved.\n"
        "'''\n",
        "{\"lines\":\"The first newline is\\ntrimmed in raw strings.\\n   All other whitespac"
        "e\\n   is preserved.\\n\",\"regex2\":\"I [dw]on't need \\\\d{2} apples\"}" },
    { "multiline_literal_quotes",
        "quot15 = '''Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"'''\n"
        "\n"
        "# apos15 = '''Here are fifteen apostrophes: ''''''''''''''''''  # INVALID\n"
        "apos15 = \"Here are fifteen apostrophes: '''''''''''''''\"\n"
        "\n"
        "# 'That,' she said, 'is still pointless.'\n"
        "str = ''''That,' she said, 'is still pointless.''''\n",
        "{\"apos15\":\"Here are fifteen apostrophes: '''''''''''''''\",\"quot15\":\"Here are "
        "fifteen quotation marks: \\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\"
        "\"\",\"str\":\"'That,' she said, 'is still pointless.'\"}" },
    { "integers",
        "int1 = +99\n"
        "int2 = 42\n"
        "int3 = 0\n"
        "int4 = -17\n",
        "{\"int1\":99,\"int2\":42,\"int3\":0,\"int4\":-17}" },
    { "integer_underscores",
        "int5 = 1_000\n"
        "int6 = 5_349_221\n"
        "int7 = 53_49_221  # Indian number system grouping\n"
        "int8 = 1_2_3_4_5  # VALID but discouraged\n",
        "{\"int5\":1000,\"int6\":5349221,\"int7\":5349221,\"int8\":12345}" },
    { "integer_prefixes",
        "# hexadecimal with prefix `0x`\n"
        "hex1 = 0xDEADBEEF\n"
        "hex2 = 0xdeadbeef\n"
        "hex3 = 0xdead_beef\n"
        "\n"
        "# octal with prefix `0o`\n"
        "oct1 = 0o01234567\n"
        "oct2 = 0o755 # useful for Unix file permissions\n"
        "\n"
        "# binary with prefix `0b`\n"
        "bin1 = 0b11010110\n",
        "{\"bin1\":214,\"hex1\":3735928559,\"hex2\":3735928559,\"hex3\":3735928559,\"oct1\":3"
        "42391,\"oct2\":493}" },
    { "floats",
        "# fractional\n"
        "flt1 = +1.0\n"
        "flt2 = 3.1415\n"
        "flt3 = -0.01\n"
        "\n"
        "# exponent\n"
        "flt4 = 5e+22\n"
        "flt5 = 1e06\n"
        "flt6 = -2E-2\n"
        "\n"
        "# both\n"
        "flt7 = 6.626e-34\n",
        "{\"flt1\":1,\"flt2\":3.1415,\"flt3\":-0.01,\"flt4\":5e22,\"flt5\":1000000,\"flt6\":-"
        "0.02,\"flt7\":6.626e-34}" },
    { "float_underscores",
        "flt8 = 224_617.445_991_228\n",
        "{\"flt8\":224617.445991228}" },
    { "booleans",
        "bool1 = true\n"
        "bool2 = false\n",
        "{\"bool1\":true,\"bool2\":false}" },
    { "offset_date_times",
        "odt1 = 1979-05-27T07:32:00Z\n"
        "odt2 = 1979-05-27T00:32:00-07:00\n"
        "odt3 = 1979-05-27T00:32:00.999999-07:00\n",
        "{\"odt1\":\"1979-05-27T07:32:00Z\",\"odt2\":\"1979-05-27T00:32:00-07:00\",\"odt3\":"
        "\"1979-05-27T00:32:00.999999-07:00\"}" },
    { "offset_date_time_space",
        "odt4 = 1979-05-27 07:32:00Z\n",
        "{\"odt4\":\"1979-05-27T07:32:00Z\"}" },
    { "local_date_times",
        "ldt1 = 1979-05-27T07:32:00\n"
        "ldt2 = 1979-05-27T00:32:00.999999\n",
        "{\"ldt1\":\"1979-05-27T07:32:00\",\"ldt2\":\"1979-05-27T00:32:00.999999\"}" },
    { "local_date",
        "ld1 = 1979-05-27\n",
        "{\"ld1\":\"1979-05-27\"}" },
    { "local_times",
        "lt1 = 07:32:00\n"
        "lt2 = 00:32:00.999999\n",
        "{\"lt1\":\"07:32:00\",\"lt2\":\"00:32:00.999999\"}" },
    { "arrays",
        "integers = [ 1, 2, 3 ]\n"
        "colors = [ \"red\", \"yellow\", \"green\" ]\n"
        "nested_arrays_of_ints = [ [ 1, 2 ], [3, 4, 5] ]\n"
        "nested_mixed_array = [ [ 1, 2 ], [\"a\", \"b\", \"c\"] ]\n"
        "string_array = [ \"all\", 'strings', \"\"\"are the same\"\"\", '''type''' ]\n"
        "\n"
        "# Mixed-type arrays are allowed\n"
        "numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]\n"
        "contributors = [\n"
        "  \"Foo Bar <foo@example.com>\",\n"
        "  { name = \"Baz Qux\", email = \"bazqux@example.com\", url = \"https://example.com/"
        "bazqux\" }\n"
        "]\n",
        "{\"colors\":[\"red\",\"yellow\",\"green\"],\"contributors\":[\"Foo Bar <foo@example."
        "com>\",{\"email\":\"bazqux@example.com\",\"name\":\"Baz Qux\",\"url\":\"https://exam"
        "ple.com/bazqux\"}],\"integers\":[1,2,3],\"nested_arrays_of_ints\":[[1,2],[3,4,5]],\""
        "nested_mixed_array\":[[1,2],[\"a\",\"b\",\"c\"]],\"numbers\":[0.1,0.2,0.5,1,2,5],\"s"
        "tring_array\":[\"all\",\"strings\",\"are the same\",\"type\"]}" },
    { "array_multiline",
        "integers2 = [\n"
        "  1, 2, 3\n"
        "]\n"
        "\n"
        "integers3 = [\n"
        "  1,\n"
        "  2, # this is ok\n"
        "]\n",
        "{\"integers2\":[1,2,3],\"integers3\":[1,2]}" },
    { "table_header",
        "[table]\n",
        "{\"table\":{}}" },
    { "tables",
        "[table-1]\n"
        "key1 = \"some string\"\n"
        "key2 = 123\n"
        "\n"
        "[table-2]\n"
        "key1 = \"another string\"\n"
        "key2 = 456\n",
        "{\"table-1\":{\"key1\":\"some string\",\"key2\":123},\"table-2\":{\"key1\":\"another"
        " string\",\"key2\":456}}" },
    { "table_quoted_header",
        "[dog.\"tater.man\"]\n"
        "type.name = \"pug\"\n",
        "{\"dog\":{\"tater.man\":{\"type\":{\"name\":\"pug\"}}}}" },
    { "table_header_whitespace",
        "[a.b.c]            # this is best practice\n"
        "[ d.e.f ]          # same as [d.e.f]\n"
        "[ g .  h  . i ]    # same as [g.h.i]\n"
        "[ j . \"\xca\x9e\" . 'l' ]  # same as [j.\"\xca\x9e\".'l']\n",
        "{\"a\":{\"b\":{\"c\":{}}},\"d\":{\"e\":{\"f\":{}}},\"g\":{\"h\":{\"i\":{}}},\"j\":{"
        "\"\\u029E\":{\"l\":{}}}}" },
    { "super_tables",
        "# [x] you\n"
        "# [x.y] don't\n"
        "# [x.y.z] need these\n"
        "[x.y.z.w] # for this to work\n"
        "\n"
        "[x] # defining a super-table afterward is ok\n",
        "{\"x\":{\"y\":{\"z\":{\"w\":{}}}}}" },
    { "tables_out_of_order",
        "# VALID BUT DISCOURAGED\n"
        "[fruit.apple]\n"
        "[animal]\n"
        "[fruit.orange]\n",
        "{\"animal\":{},\"fruit\":{\"apple\":{},\"orange\":{}}}" },
    { "tables_recommended",
        "# RECOMMENDED\n"
        "[fruit.apple]\n"
        "[fruit.orange]\n"
        "[animal]\n",
        "{\"animal\":{},\"fruit\":{\"apple\":{},\"orange\":{}}}" },
    { "root_table",
        "# Top-level table begins.\n"
        "name = \"Fido\"\n"
        "breed = \"pug\"\n"
        "\n"
        "# Top-level table ends.\n"
        "[owner]\n"
        "name = \"Regina Dogman\"\n"
        "member_since = 1999-08-04\n",
        "{\"breed\":\"pug\",\"name\":\"Fido\",\"owner\":{\"member_since\":\"1999-08-04\",\"na"
        "me\":\"Regina Dogman\"}}" },
    { "dotted_defines_tables",
        "fruit.apple.color = \"red\"\n"
        "# Defines a table named fruit\n"
        "# Defines a table named fruit.apple\n"
        "\n"
        "fruit.apple.taste.sweet = true\n"
        "# Defines a table named fruit.apple.taste\n"
        "# fruit and fruit.apple were already created\n",
        "{\"fruit\":{\"apple\":{\"color\":\"red\",\"taste\":{\"sweet\":true}}}}" },
    { "subtable_of_dotted",
        "[fruit]\n"
        "apple.color = \"red\"\n"
        "apple.taste.sweet = true\n"
        "\n"
        "# [fruit.apple]  # INVALID\n"
        "# [fruit.apple.taste]  # INVALID\n"
        "\n"
        "[fruit.apple.texture]  # you can add sub-tables\n"
        "smooth = true\n",
        "{\"fruit\":{\"apple\":{\"color\":\"red\",\"taste\":{\"sweet\":true},\"texture\":{\"s"
        "mooth\":true}}}}" },
    { "inline_tables",
        "name = { first = \"Tom\", last = \"Preston-Werner\" }\n"
        "point = { x = 1, y = 2 }\n"
        "animal = { type.name = \"pug\" }\n",
        "{\"animal\":{\"type\":{\"name\":\"pug\"}},\"name\":{\"first\":\"Tom\",\"last\":\"Pre"
        "ston-Werner\"},\"point\":{\"x\":1,\"y\":2}}" },
    { "inline_tables_as_standard",
        "[name]\n"
        "first = \"Tom\"\n"
        "last = \"Preston-Werner\"\n"
        "\n"
        "[point]\n"
        "x = 1\n"
        "y = 2\n"
        "\n"
        "[animal]\n"
        "type.name = \"pug\"\n",
        "{\"animal\":{\"type\":{\"name\":\"pug\"}},\"name\":{\"first\":\"Tom\",\"last\":\"Pre"
        "ston-Werner\"},\"point\":{\"x\":1,\"y\":2}}" },
    { "inline_complete",
        "[product]\n"
        "type = { name = \"Nail\" }\n"
        "# type.edible = false  # INVALID\n",
        "{\"product\":{\"type\":{\"name\":\"Nail\"}}}" },
    { "inline_not_after_dotted",
        "[product]\n"
        "type.name = \"Nail\"\n"
        "# type = { edible = false }  # INVALID\n",
        "{\"product\":{\"type\":{\"name\":\"Nail\"}}}" },
    { "array_of_tables",
        "[[products]]\n"
        "name = \"Hammer\"\n"
        "sku = 738594937\n"
        "\n"
        "[[products]]  # empty table within the array\n"
        "\n"
        "[[products]]\n"
        "name = \"Nail\"\n"
        "sku = 284758393\n"
        "\n"
        "color = \"gray\"\n",
        "{\"products\":[{\"name\":\"Hammer\",\"sku\":738594937},{},{\"color\":\"gray\",\"name"
        "\":\"Nail\",\"sku\":284758393}]}" },
    { "nested_array_of_tables",
        "[[fruits]]\n"
        "name = \"apple\"\n"
        "\n"
        "[fruits.physical]  # subtable\n"
        "color = \"red\"\n"
        "shape = \"round\"\n"
        "\n"
        "[[fruits.varieties]]  # nested array of tables\n"
        "name = \"red delicious\"\n"
        "\n"
        "[[fruits.varieties]]\n"
        "name = \"granny smith\"\n"
        "\n"
        "\n"
        "[[fruits]]\n"
        "name = \"banana\"\n"
        "\n"
        "[[fruits.varieties]]\n"
        "name = \"plantain\"\n",
        "{\"fruits\":[{\"name\":\"apple\",\"physical\":{\"color\":\"red\",\"shape\":\"round\""
        "},\"varieties\":[{\"name\":\"red delicious\"},{\"name\":\"granny smith\"}]},{\"name"
        "\":\"banana\",\"varieties\":[{\"name\":\"plantain\"}]}]}" },
    { "array_of_inline_tables",
        "points = [ { x = 1, y = 2, z = 3 },\n"
        "           { x = 7, y = 8, z = 9 },\n"
        "           { x = 2, y = 4, z = 8 } ]\n",
        "{\"points\":[{\"x\":1,\"y\":2,\"z\":3},{\"x\":7,\"y\":8,\"z\":9},{\"x\":2,\"y\":4,\""
        "z\":8}]}" },
};

static void test_spec_valid(void)
{
    for (size_t i = 0; i < sizeof(spec_valid) / sizeof(spec_valid[0]); i++) {
        char *got = canon_toml(spec_valid[i].name, spec_valid[i].toml);
        t_checks++;
        if (!got || strcmp(got, spec_valid[i].json) != 0) {
            t_failures++;
            fprintf(stderr, "spec example %s:\n  got      %s\n  expected %s\n",
                    spec_valid[i].name, got ? got : "(error)", spec_valid[i].json);
        }
        free(got);
    }
}

/* The spec's special floats are valid TOML but have no place in a config
 * (the tree holds finite numbers only): each is reported where it is, all
 * six in one read. */
static void test_spec_special_floats(void)
{
    struct rd r;
    rd_toml(&r,
            "# infinity\n"
            "sf1 = inf  # positive infinity\n"
            "sf2 = +inf # positive infinity\n"
            "sf3 = -inf # negative infinity\n"
            "\n"
            "# not a number\n"
            "sf4 = nan  # actual sNaN/qNaN encoding is implementation-specific\n"
            "sf5 = +nan # same as `nan`\n"
            "sf6 = -nan # valid, actual encoding is implementation-specific\n");
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 6);
    CHECK_ERR(&r.e, 2, 7, "'inf' cannot be used: configuration numbers must be finite");
    CHECK_ERR(&r.e, 3, 7, "'+inf' cannot be used");
    CHECK_ERR(&r.e, 4, 7, "'-inf' cannot be used");
    CHECK_ERR(&r.e, 7, 7, "'nan' cannot be used");
    CHECK_ERR(&r.e, 8, 7, "'+nan' cannot be used");
    CHECK_ERR(&r.e, 9, 7, "'-nan' cannot be used");
    rd_done(&r);
}

/* A document that must fail with exactly `n` errors, one of them at
 * line:col containing `sub`. */
static void bad(const char *file, int at_line, const char *text, size_t n, int line, int col,
                const char *sub)
{
    struct rd r;
    rd_toml(&r, text);
    t_checks++;
    if (r.rc != -1 || r.e.n != n || find_err(&r.e, line, col, sub) < 0) {
        t_failures++;
        fprintf(stderr, "%s:%d: expected %zu error(s), one at %d:%d containing \"%s\"; got "
                "rc=%d and %zu:\n", file, at_line, n, line, col, sub, r.rc, r.e.n);
        arc_config_errors_print(&r.e, stderr);
    }
    rd_done(&r);
}

#define BAD(text, n, line, col, sub) bad(__FILE__, __LINE__, (text), (n), (line), (col), (sub))

/* Every example the specification marks INVALID (or says must produce an
 * error), each at its position. */
static void test_spec_invalid(void)
{
    /* Key/Value Pair */
    BAD("key = # INVALID\n", 1, 1, 7, "expected a value, found '#'");
    BAD("first = \"Tom\" last = \"Preston-Werner\" # INVALID\n", 1, 1, 15,
        "expected a newline after the value, found 'l'");
    BAD("key =\n\"value\"\n", 1, 1, 6, "expected a value, found end of line");
    /* Keys */
    BAD("= \"no key name\"  # INVALID\n", 1, 1, 1, "expected a key, found '='");
    BAD("# DO NOT DO THIS\nname = \"Tom\"\nname = \"Pradyun\"\n", 1, 3, 1,
        "duplicate key 'name' (first defined at line 2)");
    BAD("# THIS WILL NOT WORK\nspelling = \"favorite\"\n\"spelling\" = \"favourite\"\n", 1, 3, 1,
        "duplicate key 'spelling' (first defined at line 2)");
    BAD("# THE FOLLOWING IS INVALID\n"
        "\n"
        "# This defines the value of fruit.apple to be an integer.\n"
        "fruit.apple = 1\n"
        "\n"
        "# But then this treats fruit.apple like it's a table.\n"
        "# You can't turn an integer into a table.\n"
        "fruit.apple.smooth = true\n", 1, 8, 7,
        "'fruit.apple' is already an integer (line 4), not a table");
    /* Comment: control characters other than tab */
    BAD("# a comment \x01 with a control character\n", 1, 1, 13,
        "control character U+0001 is not allowed in a comment");
    BAD("a = 1 # \x7f\n", 1, 1, 9, "control character U+007F is not allowed in a comment");
    /* String */
    BAD("str5 = \"\"\"Here are three quotation marks: \"\"\".\"\"\"  # INVALID\n", 1, 1, 46,
        "expected a newline after the value, found '.'");
    BAD("apos15 = '''Here are fifteen apostrophes: ''''''''''''''''''  # INVALID\n", 1, 1, 43,
        "18 apostrophes in a row inside a multi-line string");
    BAD("s = \"\\x41\"\n", 1, 1, 6, "invalid escape '\\x'");
    BAD("s = \"\\e\"\n", 1, 1, 6, "invalid escape '\\e'");     /* TOML 1.1, not 1.0 */
    BAD("s = \"\\uD800\"\n", 1, 1, 6, "U+D800 is not a Unicode scalar value");
    BAD("s = \"\\U00110000\"\n", 1, 1, 6, "U+110000 is not a Unicode scalar value");
    BAD("s = \"tab\tok, bell \x07 not\"\n", 1, 1, 19, "control character U+0007 in a string");
    BAD("s = 'literal \x1b'\n", 1, 1, 14, "control character U+001B in a string");
    BAD("s = \"one\ntwo\"\n", 1, 1, 9, "newline in a string");
    BAD("s = \"\"\"a \\ b\"\"\"\n", 1, 1, 10, "'\\' followed by whitespace");
    /* Integer */
    BAD("int = 012\n", 1, 1, 7, "leading zeros are not allowed");
    BAD("int = 1__000\n", 1, 1, 7, "an underscore must be between two digits");
    BAD("int = 1000_\n", 1, 1, 7, "an underscore must be between two digits");
    BAD("int = 0x_FF\n", 1, 1, 7, "an underscore must be between two digits");
    BAD("int = +0xFF\n", 1, 1, 7, "a sign is not allowed on hexadecimal");
    BAD("int = 0XFF\n", 1, 1, 7, "invalid number '0XFF'");
    BAD("int = 9223372036854775808\n", 1, 1, 7, "is out of range (64-bit signed)");
    BAD("int = -9223372036854775809\n", 1, 1, 7, "is out of range (64-bit signed)");
    BAD("int = 0x8000000000000000\n", 1, 1, 7, "is out of range (64-bit signed)");
    /* Float: "INVALID FLOATS", all three in one read */
    BAD("invalid_float_1 = .7\n"
        "invalid_float_2 = 7.\n"
        "invalid_float_3 = 3.e+20\n", 3, 2, 19, "a decimal point must have a digit on each side");
    BAD("invalid_float_1 = .7\n", 1, 1, 19, "invalid number '.7'");
    BAD("invalid_float_3 = 3.e+20\n", 1, 1, 19, "invalid number '3.e+20'");
    BAD("flt = 1e400\n", 1, 1, 7, "number '1e400' is out of range");
    BAD("sf = Inf\n", 1, 1, 6, "invalid value 'Inf'");
    /* Boolean: always lowercase */
    BAD("b = True\n", 1, 1, 5, "invalid value 'True' (booleans are lowercase: true, false)");
    /* Date-times */
    BAD("d = 1979-02-29\n", 1, 1, 5, "day is out of range for the month");
    BAD("d = 1979-05-27T24:00:00Z\n", 1, 1, 5, "hour is out of range");
    BAD("d = 1979-05-27T07:32Z\n", 1, 1, 5, "expected a time HH:MM:SS");
    BAD("t = 07:32:00Z\n", 1, 1, 5, "a local time cannot have an offset");
    /* Array */
    BAD("a = [1,,2]\n", 1, 1, 8, "expected a value, found ','");
    BAD("a = [,]\n", 1, 1, 6, "expected a value, found ','");
    BAD("a = [1 2]\n", 1, 1, 8, "expected ',' or ']' in the array, found '2'");
    /* Table */
    BAD("# DO NOT DO THIS\n\n[fruit]\napple = \"red\"\n\n[fruit]\norange = \"orange\"\n", 1, 6, 2,
        "table [fruit] is defined twice (first at line 3)");
    BAD("# DO NOT DO THIS EITHER\n\n[fruit]\napple = \"red\"\n\n[fruit.apple]\n"
        "texture = \"smooth\"\n", 1, 6, 8,
        "[fruit.apple]: 'fruit.apple' is already a string (line 4), not a table");
    BAD("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n\n[fruit.apple]  # INVALID\n",
        1, 5, 8, "table [fruit.apple] is already defined by dotted keys at line 2");
    BAD("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n\n"
        "[fruit.apple.taste]  # INVALID\n", 1, 5, 14,
        "table [fruit.apple.taste] is already defined by dotted keys at line 3");
    BAD("[table]\n[ table ]\n", 1, 2, 3, "table [table] is defined twice (first at line 1)");
    BAD("[a]\nb = 1\n[a.b.c]\n", 1, 3, 4, "'a.b' is already an integer (line 2), not a table");
    /* Inline Table */
    BAD("[product]\ntype = { name = \"Nail\" }\ntype.edible = false  # INVALID\n", 1, 3, 1,
        "cannot add to inline table 'type' (line 2): an inline table is complete");
    BAD("[product]\ntype.name = \"Nail\"\ntype = { edible = false }  # INVALID\n", 1, 3, 1,
        "duplicate key 'type' (first defined at line 2)");
    BAD("a = { b = 1, }\n", 1, 1, 14, "trailing comma in an inline table");
    BAD("a = { b = 1,\n c = 2 }\n", 1, 1, 13, "newline in an inline table");
    BAD("a = { b = 1 # c\n}\n", 1, 1, 13, "expected ',' or '}' in the inline table, found '#'");
    BAD("a = { b = 1 }\n[a]\n", 1, 2, 2, "table [a] is already defined as an inline table");
    BAD("a = { b = 1 }\n[a.c]\n", 1, 2, 2, "cannot add to inline table 'a' (line 1)");
    /* Array of Tables */
    BAD("# INVALID TOML DOC\n"
        "[fruit.physical]  # subtable, but to which parent element should it belong?\n"
        "color = \"red\"\n"
        "shape = \"round\"\n"
        "\n"
        "[[fruit]]  # parser must throw an error upon discovering that \"fruit\" is\n"
        "           # an array rather than a table\n"
        "name = \"apple\"\n", 1, 6, 3,
        "[[fruit]]: 'fruit' is already a table (line 2), not an array of tables");
    BAD("# INVALID TOML DOC\nfruits = []\n\n[[fruits]] # Not allowed\n", 1, 4, 3,
        "cannot append to array 'fruits': it was written as a value at line 2");
    static const char conflicts[] =
        "# INVALID TOML DOC\n"
        "[[fruits]]\n"
        "name = \"apple\"\n"
        "\n"
        "[[fruits.varieties]]\n"
        "name = \"red delicious\"\n"
        "\n"
        "# INVALID: This table conflicts with the previous array of tables\n"
        "[fruits.varieties]\n"
        "name = \"granny smith\"\n"
        "\n"
        "[fruits.physical]\n"
        "color = \"red\"\n"
        "shape = \"round\"\n"
        "\n"
        "# INVALID: This array of tables conflicts with the previous table\n"
        "[[fruits.physical]]\n"
        "color = \"green\"\n";
    BAD(conflicts, 2, 9, 9, "[fruits.varieties] is an array of tables (line 5); write "
        "[[fruits.varieties]] to add an element");
    BAD(conflicts, 2, 17, 10, "[[fruits.physical]]: 'fruits.physical' is already a table "
        "(line 12), not an array of tables");
    /* Spec: a TOML file must be valid UTF-8 */
    BAD("a = \"ok\"\nb = \"\xc3\x28\"\n", 1, 2, 6, "invalid UTF-8 (byte 0xc3)");
    BAD("a = \"\xed\xa0\x80\"\n", 1, 1, 6, "invalid UTF-8");   /* an encoded surrogate */
    /* Newline means LF or CRLF: a lone CR is neither */
    BAD("a = 1\rb = 2\n", 1, 1, 6, "a carriage return must be followed by a line feed");
}

/* ------------------------------------------------------------ details */

static void test_strings(void)
{
    struct rd r;
    rd_toml(&r,
            "esc = \"\\b\\t\\n\\f\\r\\\"\\\\\"\n"
            "u = \"\\u00e9\\u20AC\\U0001F600\"\n"
            "nul = \"a\\u0000b\"\n"
            "raw = 'h\xc3\xa9 \\n'\n"
            "ml = \"\"\"\r\nline1\r\nline2\\\r\n   \r\n  \\tend\"\"\"\n"
            "mll = '''\nx\r\ny'''\n"
            "q = \"\"\"\"\"\"\"\n"
            "ttt = ''''''\n");
    CHECK_INT(r.rc, 0);
    const struct arc_cn *root = r.t.root;
    if (r.rc == 0) {
        CHECK_STR(at(root, "esc")->v.s.p, "\b\t\n\f\r\"\\");
        CHECK_STR(at(root, "u")->v.s.p, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        CHECK_INT(at(root, "nul")->v.s.len, 3);
        CHECK(memcmp(at(root, "nul")->v.s.p, "a\0b", 3) == 0);
        CHECK_STR(at(root, "raw")->v.s.p, "h\xc3\xa9 \\n");
        /* CRLF in a multi-line string reads as LF; the line-ending
         * backslash eats the CRLF, the blank line and the indentation */
        CHECK_STR(at(root, "ml")->v.s.p, "line1\nline2\tend");
        CHECK_STR(at(root, "mll")->v.s.p, "x\ny");
        CHECK_STR(at(root, "q")->v.s.p, "\"");
        CHECK_STR(at(root, "ttt")->v.s.p, "");
    }
    rd_done(&r);

    /* a NUL in a key cannot be represented (keys are C strings) */
    BAD("\"a\\u0000b\" = 1\n", 1, 1, 1, "key contains a NUL character");
    BAD("s = \"\"\"abc\n", 1, 1, 5, "unterminated multi-line string (no closing \"\"\")");
    BAD("s = 'abc", 1, 1, 5, "unterminated string (no closing ')");
    BAD("s = \"\\u12\"\n", 1, 1, 6, "\\u needs 4 hexadecimal digits");
    BAD("\"\"\"k\"\"\" = 1\n", 1, 1, 1, "a multi-line string cannot be a key");
}

static void test_numbers(void)
{
    struct rd r;
    rd_toml(&r,
            "max = 9223372036854775807\n"
            "min = -9223372036854775808\n"
            "hex = 0x7FFFFFFFFFFFFFFF\n"
            "oct = 0o777\n"
            "bin = 0b1_0\n"
            "zero = -0\n"
            "f = -0.0\n"
            "tiny = 5e-324\n"
            "e = 1E0_1\n"
            "big = 1_7976931348623157e292\n");
    CHECK_INT(r.rc, 0);
    const struct arc_cn *root = r.t.root;
    if (r.rc == 0) {
        CHECK(at(root, "max")->v.i == INT64_MAX);
        CHECK(at(root, "min")->v.i == INT64_MIN);
        CHECK(at(root, "hex")->v.i == INT64_MAX);
        CHECK_INT(at(root, "oct")->v.i, 511);
        CHECK_INT(at(root, "bin")->v.i, 2);
        CHECK_INT(at(root, "zero")->kind, ARC_CN_INT);
        CHECK_INT(at(root, "zero")->v.i, 0);
        CHECK_INT(at(root, "f")->kind, ARC_CN_FLOAT);
        CHECK(at(root, "tiny")->v.f > 0);
        CHECK(at(root, "e")->v.f == 10.0);
        CHECK(at(root, "big")->v.f == 1.7976931348623157e308);
    }
    rd_done(&r);
}

static void test_datetimes(void)
{
    /* Date-times are strings in RFC 3339 form: 'T' and 'Z' whatever case or
     * delimiter the file used, fractions kept as written. */
    char *j = canon_toml("dt", "a = 1979-05-27 07:32:00z\n"
                               "b = 1979-05-27t07:32:00.5+01:30\n"
                               "c = 2000-02-29\n"
                               "d = 23:59:60\n"
                               "e = [1979-05-27 07:32:00, 1979-05-27]\n");
    CHECK_STR(j, "{\"a\":\"1979-05-27T07:32:00Z\",\"b\":\"1979-05-27T07:32:00.5+01:30\","
                 "\"c\":\"2000-02-29\",\"d\":\"23:59:60\","
                 "\"e\":[\"1979-05-27T07:32:00\",\"1979-05-27\"]}");
    free(j);
}

/* Where nodes and keys sit: headers at their '[', dotted tables at their
 * key part, columns in characters. */
static void test_positions(void)
{
    struct rd r;
    rd_toml(&r,
            "title = \"x\"\n"                          /* 1 */
            "[server]\n"                               /* 2 */
            "  port.number = 8080\n"                   /* 3 */
            "[[items]]\n"                              /* 4 */
            "name = \"\xc3\xa9\"\n"                    /* 5 */
            "[[items]]\n"                              /* 6 */
            "inline = { \"\xd0\xba\xd0\xbb\" = [1, 2] }\n"   /* 7 */
            "[a.b]\n"                                  /* 8 */
            "[ a ]\n");                                /* 9 */
    CHECK_INT(r.rc, 0);
    if (r.rc != 0) {
        arc_config_errors_print(&r.e, stderr);
        rd_done(&r);
        return;
    }
    const struct arc_cn *root = r.t.root, *n;
    CHECK_INT(root->line, 1);
    CHECK_INT(root->col, 1);
    n = at(root, "title");
    CHECK_INT(n->key_line, 1);
    CHECK_INT(n->key_col, 1);
    CHECK_INT(n->col, 9);
    const struct arc_cn *server = at(root, "server");
    CHECK_INT(server->line, 2);
    CHECK_INT(server->col, 1);
    CHECK_INT(server->key_line, 2);
    CHECK_INT(server->key_col, 2);
    const struct arc_cn *port = at(server, "port");
    CHECK_INT(port->line, 3);
    CHECK_INT(port->col, 3);
    CHECK_INT(port->key_col, 3);
    n = at(port, "number");
    CHECK_INT(n->key_line, 3);
    CHECK_INT(n->key_col, 8);
    CHECK_INT(n->col, 17);
    const struct arc_cn *items = at(root, "items");
    CHECK_INT(items->kind, ARC_CN_SEQ);
    CHECK_INT(items->n, 2);
    CHECK_INT(items->line, 4);
    CHECK_INT(items->col, 1);
    CHECK_INT(items->key_col, 3);
    CHECK_INT(items->first->line, 4);
    CHECK_INT(items->last->line, 6);
    CHECK_INT(items->last->col, 1);
    const struct arc_cn *in = at(items->last, "inline");
    CHECK_INT(in->line, 7);
    CHECK_INT(in->col, 10);
    n = at(in, "\xd0\xba\xd0\xbb");
    CHECK_INT(n->key_col, 12);
    CHECK_INT(n->col, 19);
    CHECK_INT(n->last->col, 23);
    /* [a] after [a.b]: the table now sits at its own header */
    const struct arc_cn *a = at(root, "a");
    CHECK_INT(a->line, 9);
    CHECK_INT(a->col, 1);
    CHECK_INT(a->key_line, 9);
    CHECK_INT(a->key_col, 3);
    /* document order is kept */
    CHECK_STR(root->first->key, "title");
    CHECK_STR(root->last->key, "a");
    rd_done(&r);
}

/* Definition rules beyond the spec's own examples (the toml-test rules):
 * what dotted keys and headers may extend, and that one bad definition is
 * reported without cascading while reading goes on to find the next. */
static void test_redefinitions(void)
{
    /* a dotted key may extend tables dotted keys made in the same section */
    char *j = canon_toml("same-section", "a.b.c = 1\na.b.d = 2\na.e = 3\n[x]\n");
    CHECK_STR(j, "{\"a\":{\"b\":{\"c\":1,\"d\":2},\"e\":3},\"x\":{}}");
    free(j);
    /* ... and a table only implied by a longer header */
    j = canon_toml("implicit", "[a.b.c]\nz = 9\n[a]\nb.d = 1\n");
    CHECK_STR(j, "{\"a\":{\"b\":{\"c\":{\"z\":9},\"d\":1}}}");
    free(j);
    /* a header may add sub-tables to any table but an inline one */
    j = canon_toml("subtables", "a.b = 1\n[a.c]\n[[a.d]]\n[a.d.e]\nf = 1\n[[a.d]]\n");
    CHECK_STR(j, "{\"a\":{\"b\":1,\"c\":{},\"d\":[{\"e\":{\"f\":1}},{}]}}");
    free(j);

    /* but not to tables dotted keys of another section made ... */
    BAD("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", 1, 4, 3,
        "a dotted key cannot add to table 'b.c': it is defined by a [header] at line 1");
    BAD("[a]\nb.c = 1\n[a.x]\n[a]\n", 1, 4, 2, "table [a] is defined twice");
    BAD("[a.b.c]\n[a]\nb.x = 1\n[a.b]\n", 1, 4, 4,
        "table [a.b] is already defined by dotted keys at line 1");
    BAD("x.y = 1\n[z]\n[x.w]\nv = 1\n[x]\n", 1, 5, 2,
        "table [x] is already defined by dotted keys at line 1");
    /* ... nor, with a dotted key, into an array of tables or an array */
    BAD("[[a.b]]\n[a]\nb.c = 1\n", 1, 3, 1, "'b' is already an array of tables (line 1)");
    BAD("a = [{b = 1}]\na.c = 2\n", 1, 2, 1, "'a' is already an array (line 1), not a table");
    BAD("a = [{b = 1}]\n[a.c]\n", 1, 2, 2,
        "cannot add to array 'a' (line 1): only an array of tables made with [[a]]");
    /* duplicate keys inside inline tables, and through dotted keys there */
    BAD("a = {b = 1, b = 2}\n", 1, 1, 13, "duplicate key 'b' (first defined at line 1)");
    BAD("a = {b = {c = 1}, b.d = 2}\n", 1, 1, 19, "cannot add to inline table 'b'");
    BAD("a = {b.c = 1, b = 2}\n", 1, 1, 15, "duplicate key 'b'");

    /* All redefinitions of a file in one read; the keys under a header that
     * failed are checked among themselves but not reported against the
     * table they failed to reach. */
    struct rd r;
    rd_toml(&r, "[a]\n"
                "x = 1\n"
                "[a]\n"         /* 3: defined twice */
                "x = 2\n"       /*    not a duplicate of line 2 */
                "y = 1\n"
                "y = 2\n"       /* 6: duplicate within the failed table */
                "[b]\n"
                "z = 1\n"
                "z = 2\n"       /* 9 */
                "w = 0x\n");    /* 10: a bad value, still reported */
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 4);
    CHECK_ERR(&r.e, 3, 2, "table [a] is defined twice (first at line 1)");
    CHECK_ERR(&r.e, 6, 1, "duplicate key 'y' (first defined at line 5)");
    CHECK_ERR(&r.e, 9, 1, "duplicate key 'z' (first defined at line 8)");
    CHECK_ERR(&r.e, 10, 5, "invalid number '0x'");
    rd_done(&r);
    /* a syntax error stops the read: what follows is not looked at */
    BAD("a = 1\na = 2\nb = \nb = 3\n", 2, 3, 5, "expected a value, found end of line");
}

/* Builds "prefix" + `n` copies of `rep` + "suffix" (caller frees). */
static char *repeat(const char *prefix, const char *rep, int n, const char *mid, const char *rep2,
                    const char *suffix)
{
    size_t len = strlen(prefix) + (size_t)n * (strlen(rep) + strlen(rep2)) + strlen(mid) +
                 strlen(suffix) + 1;
    char *s = malloc(len), *p = s;
    p = stpcpy(p, prefix);
    for (int i = 0; i < n; i++)
        p = stpcpy(p, rep);
    p = stpcpy(p, mid);
    for (int i = 0; i < n; i++)
        p = stpcpy(p, rep2);
    stpcpy(p, suffix);
    return s;
}

/* The other readers' limits: ARC_CONF_MAX_DEPTH containers, counting the
 * root table (JSON counts its root object), whatever made them. */
static void test_limits(void)
{
    struct rd r;
    /* 63 arrays in the root table: 64 levels, the most */
    char *s = repeat("a = ", "[", ARC_CONF_MAX_DEPTH - 1, "", "]", "\n");
    rd_toml(&r, s);
    CHECK_INT(r.rc, 0);
    rd_done(&r);
    free(s);
    s = repeat("a = ", "[", ARC_CONF_MAX_DEPTH, "", "]", "\n");
    BAD(s, 1, 1, 5 + ARC_CONF_MAX_DEPTH - 1, "nesting deeper than 64 levels");
    free(s);
    s = repeat("a = ", "{b=", ARC_CONF_MAX_DEPTH, "1", "}", "\n");
    BAD(s, 1, 1, 5 + 3 * (ARC_CONF_MAX_DEPTH - 1), "nesting deeper than 64 levels");
    free(s);
    /* dotted keys: 64 parts make 63 tables, 65 parts too many */
    s = repeat("", "k.", ARC_CONF_MAX_DEPTH - 1, "v = 1\n", "", "");
    rd_toml(&r, s);
    CHECK_INT(r.rc, 0);
    rd_done(&r);
    free(s);
    s = repeat("", "k.", ARC_CONF_MAX_DEPTH, "v = 1\n", "", "");
    BAD(s, 1, 1, 2 * ARC_CONF_MAX_DEPTH, "nesting deeper than 64 levels");
    free(s);
    /* headers: [k.k...] 63 parts is the deepest table */
    s = repeat("[k", ".k", ARC_CONF_MAX_DEPTH - 2, "]\nv = 1\n", "", "");
    rd_toml(&r, s);
    CHECK_INT(r.rc, 0);
    rd_done(&r);
    free(s);
    s = repeat("[k", ".k", ARC_CONF_MAX_DEPTH - 1, "]\nv = 1\n", "", "");
    BAD(s, 1, 1, 2 * ARC_CONF_MAX_DEPTH, "nesting deeper than 64 levels");
    free(s);
    /* an array of tables counts twice (the array and its element) */
    s = repeat("[[k", ".k", ARC_CONF_MAX_DEPTH - 3, "]]\n", "", "");
    rd_toml(&r, s);
    CHECK_INT(r.rc, 0);
    rd_done(&r);
    free(s);
    s = repeat("[[k", ".k", ARC_CONF_MAX_DEPTH - 2, "]]\n", "", "");
    BAD(s, 1, 1, 2 * ARC_CONF_MAX_DEPTH - 1, "nesting deeper than 64 levels");
    free(s);

    /* Many keys in one table (generated files): found in time, and a
     * duplicate at the end still caught. */
    enum { N = 50000 };
    char *big = malloc((size_t)N * 24 + 64), *p = big;
    for (int i = 0; i < N; i++)
        p += sprintf(p, "key%d = %d\n", i, i);
    strcpy(p, "key123 = 0\n");
    rd_toml(&r, big);
    CHECK_INT(r.rc, -1);
    CHECK_INT(r.e.n, 1);
    CHECK_ERR(&r.e, N + 1, 1, "duplicate key 'key123' (first defined at line 124)");
    rd_done(&r);
    *p = '\0';
    rd_toml(&r, big);
    CHECK_INT(r.rc, 0);
    if (r.rc == 0) {
        CHECK_INT(r.t.root->n, N);
        CHECK_INT(at(r.t.root, "key49999")->v.i, 49999);
    }
    rd_done(&r);
    free(big);
}

static void test_empty_bom_utf8(void)
{
    struct rd r;
    static const char *const empty[] = { "", "\n", "# only a comment\n", "  \r\n\t\n" };
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        rd_toml(&r, empty[i]);
        CHECK_INT(r.rc, 0);
        CHECK(r.t.root == NULL);
        rd_done(&r);
    }
    struct arc_config_errors e;
    CHECK(load_str("toml", "# nothing\n", &e) == NULL);
    CHECK_ERR(&e, 0, 0, "configuration is empty");
    arc_config_errors_dispose(&e);

    /* a leading byte order mark is skipped and takes no column */
    rd_toml(&r, "\xef\xbb\xbf" "a = 1\n");
    CHECK_INT(r.rc, 0);
    if (r.rc == 0)
        CHECK_INT(at(r.t.root, "a")->col, 5);
    rd_done(&r);
    BAD("a = 1\n\xef\xbb\xbf" "b = 2\n", 1, 2, 1, "expected a key, found '\xef\xbb\xbf' (U+FEFF)");
    /* non-ASCII text is fine in strings and comments, nowhere else */
    rd_toml(&r, "# \xc3\xa9t\xc3\xa9\ns = \"\xc3\xa9\" # \xe2\x82\xac\n");
    CHECK_INT(r.rc, 0);
    rd_done(&r);
    BAD("\xc3\xa9 = 1\n", 1, 1, 1, "expected a key, found '\xc3\xa9' (U+00E9)");
    /* the first invalid byte is reported, wherever it is */
    BAD("# \xff\n", 1, 1, 3, "invalid UTF-8 (byte 0xff)");
    BAD("k = \"\xe2\x82\"\n", 1, 1, 6, "invalid UTF-8 (byte 0xe2)");
    BAD("k = \"\xf4\x90\x80\x80\"\n", 1, 1, 6, "invalid UTF-8 (byte 0xf4)");   /* > U+10FFFF */
    BAD("k = \"\xc0\xaf\"\n", 1, 1, 6, "invalid UTF-8 (byte 0xc0)");           /* overlong */
}

/* ------------------------------------------------------------ one config, three formats */

/* Loads the same config from each format; all must load and agree on the
 * canonical JSON and the fingerprint. */
static void same_config(const char *file, int at_line, const char *const texts[][2], size_t n)
{
    struct arc_config *first = NULL;
    for (size_t i = 0; i < n; i++) {
        struct arc_config_errors e;
        struct arc_config *c = load_str(texts[i][0], texts[i][1], &e);
        t_checks++;
        if (!c) {
            t_failures++;
            fprintf(stderr, "%s:%d: the %s form does not load:\n", file, at_line, texts[i][0]);
            arc_config_errors_print(&e, stderr);
        } else if (!first) {
            first = c;
            c = NULL;
        } else if (strcmp(c->canonical_json, first->canonical_json) != 0 ||
                   strcmp(c->fingerprint, first->fingerprint) != 0) {
            t_failures++;
            fprintf(stderr, "%s:%d: %s and %s forms differ:\n  %s\n  %s\n", file, at_line,
                    texts[0][0], texts[i][0], first->canonical_json, c->canonical_json);
        }
        arc_config_free(c);
        arc_config_errors_dispose(&e);
    }
    arc_config_free(first);
}

#define SAME_CONFIG(texts) same_config(__FILE__, __LINE__, (texts), sizeof(texts) / sizeof(texts[0]))

static void test_same_config_quickstart(void)
{
    static const char *const texts[][2] = {
        { "yaml",
          "listeners:\n"
          "  - name: http\n"
          "    kind: http\n"
          "    bind: \"127.0.0.1:8080\"\n"
          "upstreams:\n"
          "  - name: app\n"
          "    discovery:\n"
          "      type: static\n"
          "      endpoints:\n"
          "        - address: \"127.0.0.1:3000\"\n"
          "routes:\n"
          "  - name: root\n"
          "    match:\n"
          "      path: \"/{*rest}\"\n"
          "    action:\n"
          "      upstream: app\n" },
        { "json",
          "{\"listeners\": [{\"name\": \"http\", \"kind\": \"http\", \"bind\": \"127.0.0.1:8080"
          "\"}],\n"
          " \"upstreams\": [{\"name\": \"app\", \"discovery\": {\"type\": \"static\",\n"
          "                \"endpoints\": [{\"address\": \"127.0.0.1:3000\"}]}}],\n"
          " \"routes\": [{\"name\": \"root\", \"match\": {\"path\": \"/{*rest}\"},\n"
          "              \"action\": {\"upstream\": \"app\"}}]}\n" },
        { "toml",
          "[[listeners]]\n"
          "name = \"http\"\n"
          "kind = \"http\"\n"
          "bind = \"127.0.0.1:8080\"\n"
          "\n"
          "[[upstreams]]\n"
          "name = \"app\"\n"
          "discovery.type = \"static\"\n"
          "discovery.endpoints = [{ address = \"127.0.0.1:3000\" }]\n"
          "\n"
          "[[routes]]\n"
          "name = \"root\"\n"
          "match.path = \"/{*rest}\"\n"
          "action.upstream = \"app\"\n" },
        /* the same again in TOML, every table spelled out */
        { "toml",
          "[[routes]]\n"
          "name = 'root'\n"
          "[routes.action]\n"
          "upstream = 'app'\n"
          "[routes.match]\n"
          "path = '/{*rest}'\n"
          "[[upstreams]]\n"
          "name = 'app'\n"
          "[upstreams.discovery]\n"
          "type = 'static'\n"
          "[[upstreams.discovery.endpoints]]\n"
          "address = '127.0.0.1:3000'\n"
          "[[listeners]]\n"
          "bind = '127.0.0.1:8080'\n"
          "kind = 'http'\n"
          "name = 'http'\n" },
    };
    SAME_CONFIG(texts);
}

/* Listeners with nested socket options, weighted endpoints as arrays of
 * tables, routes whose match and action are nested tables (redirect,
 * respond with a repeated header, header edits, forwarded), durations,
 * sizes and booleans. */
static void test_same_config_routes(void)
{
    static const char *const texts[][2] = {
        { "yaml",
          "node:\n"
          "  id: gw-7\n"
          "  read_timeout: 15s\n"
          "  idle_timeout: 2m\n"
          "listeners:\n"
          "  - name: web\n"
          "    kind: http\n"
          "    bind: \"127.0.0.1:0\"\n"
          "    socket:\n"
          "      backlog: 1024\n"
          "      keepalive: {idle: 30s, interval: 5s, count: 3}\n"
          "  - name: web6\n"
          "    kind: http\n"
          "    bind: \"[::1]:0\"\n"
          "upstreams:\n"
          "  - name: users\n"
          "    discovery:\n"
          "      type: static\n"
          "      endpoints:\n"
          "        - address: \"10.0.0.1:8080\"\n"
          "          weight: 5\n"
          "        - address: \"10.0.0.2:8080\"\n"
          "          weight: 1\n"
          "        - address: \"[2001:db8::7]:8080\"\n"
          "    lb: {algorithm: weighted_round_robin}\n"
          "    timeouts: {connect: 500ms, ttfb: 10s}\n"
          "    pool: {max_idle: 64, idle_ttl: 1m}\n"
          "  - name: static\n"
          "    protocol: http2\n"
          "    discovery:\n"
          "      type: static\n"
          "      endpoints: [{address: \"10.0.1.1:9000\"}]\n"
          "routes:\n"
          "  - name: users-api\n"
          "    priority: 5\n"
          "    match:\n"
          "      path: \"/users/{id}\"\n"
          "      methods: [GET, PUT]\n"
          "      host: [\"users.example.com\"]\n"
          "    action:\n"
          "      upstream: users\n"
          "      headers:\n"
          "        - {op: set, name: X-Route, value: users-api}\n"
          "      forwarded:\n"
          "        x_forwarded_for: true\n"
          "        via: false\n"
          "        trusted_proxies: [\"192.168.0.0/16\"]\n"
          "  - name: assets\n"
          "    match: {path: \"/assets/{*file}\"}\n"
          "    action:\n"
          "      upstream: static\n"
          "      response_headers:\n"
          "        - {op: set, name: Cache-Control, value: \"public, max-age=3600\"}\n"
          "  - name: moved\n"
          "    match: {path: \"/old/{*rest}\"}\n"
          "    action:\n"
          "      redirect: {status: 308, location: \"/new/{rest}?$query\"}\n"
          "  - name: teapot\n"
          "    match:\n"
          "      path: /tea\n"
          "    action:\n"
          "      respond:\n"
          "        status: 418\n"
          "        body: \"I'm a teapot\\n\"\n"
          "        headers:\n"
          "          - {name: Content-Type, value: text/plain}\n"
          "          - {name: Set-Cookie, value: a=1}\n"
          "          - {name: Set-Cookie, value: b=2}\n"
          "security:\n"
          "  limits: {max_headers: 64, max_uri: 4kb}\n"
          "observability:\n"
          "  metrics_bind: \"127.0.0.1:0\"\n"
          "  metrics_enabled: false\n" },
        { "json",
          "{\n"
          "  \"observability\": {\"metrics_enabled\": false, \"metrics_bind\": \"127.0.0.1:0\"}"
          ",\n"
          "  \"security\": {\"limits\": {\"max_uri\": \"4kb\", \"max_headers\": 64.0}},\n"
          "  \"routes\": [\n"
          "    {\"name\": \"users-api\", \"priority\": 5,\n"
          "     \"match\": {\"path\": \"/users/{id}\", \"methods\": [\"GET\", \"PUT\"],\n"
          "               \"host\": [\"users.example.com\"]},\n"
          "     \"action\": {\"upstream\": \"users\",\n"
          "                \"headers\": [{\"op\": \"set\", \"name\": \"X-Route\", \"value\": \""
          "users-api\"}],\n"
          "                \"forwarded\": {\"x_forwarded_for\": true, \"via\": false,\n"
          "                              \"trusted_proxies\": [\"192.168.0.0/16\"]}}},\n"
          "    {\"name\": \"assets\", \"match\": {\"path\": \"/assets/{*file}\"},\n"
          "     \"action\": {\"upstream\": \"static\", \"response_headers\": [\n"
          "       {\"op\": \"set\", \"name\": \"Cache-Control\", \"value\": \"public, max-age=3"
          "600\"}]}},\n"
          "    {\"name\": \"moved\", \"match\": {\"path\": \"/old/{*rest}\"},\n"
          "     \"action\": {\"redirect\": {\"status\": 308, \"location\": \"/new/{rest}?$query"
          "\"}}},\n"
          "    {\"name\": \"teapot\", \"match\": {\"path\": \"/tea\"},\n"
          "     \"action\": {\"respond\": {\"status\": 418, \"body\": \"I\\u0027m a teapot\\n\""
          ",\n"
          "       \"headers\": [{\"name\": \"Content-Type\", \"value\": \"text/plain\"},\n"
          "                   {\"name\": \"Set-Cookie\", \"value\": \"a=1\"},\n"
          "                   {\"name\": \"Set-Cookie\", \"value\": \"b=2\"}]}}}\n"
          "  ],\n"
          "  \"upstreams\": [\n"
          "    {\"name\": \"users\",\n"
          "     \"discovery\": {\"type\": \"static\", \"endpoints\": [\n"
          "       {\"address\": \"10.0.0.1:8080\", \"weight\": 5},\n"
          "       {\"address\": \"10.0.0.2:8080\", \"weight\": 1},\n"
          "       {\"address\": \"[2001:db8::7]:8080\"}]},\n"
          "     \"lb\": {\"algorithm\": \"weighted_round_robin\"},\n"
          "     \"timeouts\": {\"connect\": \"500ms\", \"ttfb\": \"10s\"},\n"
          "     \"pool\": {\"max_idle\": 64, \"idle_ttl\": \"1m\"}},\n"
          "    {\"name\": \"static\", \"protocol\": \"http2\",\n"
          "     \"discovery\": {\"type\": \"static\", \"endpoints\": [{\"address\": \"10.0.1.1:"
          "9000\"}]}}\n"
          "  ],\n"
          "  \"listeners\": [\n"
          "    {\"name\": \"web\", \"kind\": \"http\", \"bind\": \"127.0.0.1:0\",\n"
          "     \"socket\": {\"backlog\": 1024,\n"
          "                \"keepalive\": {\"idle\": \"30s\", \"interval\": \"5s\", \"count\": "
          "3}}},\n"
          "    {\"name\": \"web6\", \"kind\": \"http\", \"bind\": \"[::1]:0\"}\n"
          "  ],\n"
          "  \"node\": {\"id\": \"gw-7\", \"read_timeout\": \"15s\", \"idle_timeout\": \"2m\"}"
          "\n"
          "}\n" },
        { "toml",
          "# gw-7, in TOML\n"
          "[node]\n"
          "id = \"gw-7\"\n"
          "read_timeout = \"15s\"\n"
          "idle_timeout = \"2m\"\n"
          "\n"
          "[[listeners]]\n"
          "name = \"web\"\n"
          "kind = \"http\"\n"
          "bind = \"127.0.0.1:0\"\n"
          "socket.backlog = 1_024\n"
          "socket.keepalive = { idle = \"30s\", interval = \"5s\", count = 3 }\n"
          "\n"
          "[[listeners]]\n"
          "name = \"web6\"\n"
          "kind = \"http\"\n"
          "bind = \"[::1]:0\"\n"
          "\n"
          "[[upstreams]]\n"
          "name = \"users\"\n"
          "lb.algorithm = \"weighted_round_robin\"\n"
          "timeouts = { connect = \"500ms\", ttfb = \"10s\" }\n"
          "pool = { max_idle = 0x40, idle_ttl = \"1m\" }\n"
          "\n"
          "  [upstreams.discovery]\n"
          "  type = \"static\"\n"
          "\n"
          "  [[upstreams.discovery.endpoints]]\n"
          "  address = \"10.0.0.1:8080\"\n"
          "  weight = 5\n"
          "\n"
          "  [[upstreams.discovery.endpoints]]\n"
          "  address = \"10.0.0.2:8080\"\n"
          "  weight = 1\n"
          "\n"
          "  [[upstreams.discovery.endpoints]]\n"
          "  address = \"[2001:db8::7]:8080\"\n"
          "\n"
          "[[upstreams]]\n"
          "name = \"static\"\n"
          "protocol = \"http2\"\n"
          "discovery = { type = \"static\", endpoints = [ { address = \"10.0.1.1:9000\" } ] }\n"
          "\n"
          "[[routes]]\n"
          "name = \"users-api\"\n"
          "priority = +5\n"
          "\n"
          "[routes.match]\n"
          "path = \"/users/{id}\"\n"
          "methods = [\n"
          "  \"GET\",\n"
          "  \"PUT\",   # trailing comma and comments are fine in arrays\n"
          "]\n"
          "host = [ 'users.example.com' ]\n"
          "\n"
          "[routes.action]\n"
          "upstream = \"users\"\n"
          "headers = [ { op = \"set\", name = \"X-Route\", value = \"users-api\" } ]\n"
          "forwarded.x_forwarded_for = true\n"
          "forwarded.via = false\n"
          "forwarded.trusted_proxies = [\"192.168.0.0/16\"]\n"
          "\n"
          "[[routes]]\n"
          "name = \"assets\"\n"
          "match = { path = \"/assets/{*file}\" }\n"
          "\n"
          "[routes.action]\n"
          "upstream = \"static\"\n"
          "\n"
          "[[routes.action.response_headers]]\n"
          "op = \"set\"\n"
          "name = \"Cache-Control\"\n"
          "value = \"public, max-age=3600\"\n"
          "\n"
          "[[routes]]\n"
          "name = \"moved\"\n"
          "match.path = \"/old/{*rest}\"\n"
          "action.redirect = { status = 308, location = \"/new/{rest}?$query\" }\n"
          "\n"
          "[[routes]]\n"
          "name = \"teapot\"\n"
          "match.path = \"/tea\"\n"
          "\n"
          "[routes.action.respond]\n"
          "status = 418\n"
          "body = '''\n"
          "I'm a teapot\n"
          "'''\n"
          "headers = [\n"
          "  { name = \"Content-Type\", value = \"text/plain\" },\n"
          "  { name = \"Set-Cookie\", value = \"a=1\" },\n"
          "  { name = \"Set-Cookie\", value = \"b=2\" },\n"
          "]\n"
          "\n"
          "[security.limits]\n"
          "max_headers = 64\n"
          "max_uri = \"4kb\"\n"
          "\n"
          "[observability]\n"
          "metrics_bind = \"127.0.0.1:0\"\n"
          "metrics_enabled = false\n" },
    };
    SAME_CONFIG(texts);
}

/* The full example shipped with Arc (every key this version accepts), and
 * its translation to TOML. */
static const char arc_toml[] =
    "# examples/arc.yaml, in TOML\n"
    "[node]\n"
    "id = \"edge-1\"\n"
    "workers = 0\n"
    "max_connections = 0\n"
    "read_timeout = \"30s\"\n"
    "write_timeout = \"30s\"\n"
    "idle_timeout = \"60s\"\n"
    "drain_timeout = \"30s\"\n"
    "lingering_timeout = \"2s\"\n"
    "max_buffered_output = \"256kb\"\n"
    "\n"
    "[io_uring]\n"
    "uring_entries = 2048\n"
    "sqpoll = false\n"
    "buffer_size = \"16kb\"\n"
    "buffer_count = 1024\n"
    "\n"
    "[[listeners]]\n"
    "name = \"public\"\n"
    "kind = \"http\"\n"
    "bind = \"0.0.0.0:8080\"\n"
    "proxy_protocol = false\n"
    "\n"
    "[listeners.socket]\n"
    "backlog = 4096\n"
    "tcp_fastopen_backlog = 256\n"
    "dscp = 10\n"
    "defer_accept = \"1s\"\n"
    "keepalive = { idle = \"60s\", interval = \"10s\", count = 6 }\n"
    "\n"
    "[[listeners]]\n"
    "name = \"local-v6\"\n"
    "kind = \"http\"\n"
    "bind = \"[::1]:8081\"\n"
    "\n"
    "[[upstreams]]\n"
    "name = \"app\"\n"
    "protocol = \"http1\"\n"
    "discovery.type = \"static\"\n"
    "lb = { algorithm = \"peak_ewma\", decay = \"10s\" }\n"
    "\n"
    "[[upstreams.discovery.endpoints]]\n"
    "address = \"127.0.0.1:3000\"\n"
    "weight = 3\n"
    "\n"
    "[[upstreams.discovery.endpoints]]\n"
    "address = \"127.0.0.1:3001\"\n"
    "\n"
    "[upstreams.pool]\n"
    "max_idle = 1024\n"
    "idle_ttl = \"30s\"\n"
    "max_lifetime = \"300s\"\n"
    "max_connections = 0\n"
    "\n"
    "[upstreams.timeouts]\n"
    "connect = \"2s\"\n"
    "write = \"30s\"\n"
    "ttfb = \"30s\"\n"
    "read = \"30s\"\n"
    "\n"
    "[[upstreams]]\n"
    "name = \"legacy\"\n"
    "discovery = { type = \"static\", endpoints = [ { address = \"[::1]:4000\" } ] }\n"
    "lb.algorithm = \"round_robin\"\n"
    "\n"
    "[[routes]]\n"
    "name = \"api\"\n"
    "priority = 10\n"
    "match.path = \"/api/{version}/{*rest}\"\n"
    "match.host = [\"api.example.com\", \"*.api.example.com\"]\n"
    "match.methods = [\"GET\", \"HEAD\", \"POST\", \"PUT\", \"DELETE\", \"PATCH\"]\n"
    "\n"
    "[routes.action]\n"
    "upstream = \"app\"\n"
    "headers = [\n"
    "  { op = \"set\", name = \"X-Api-Version\", value = \"v1\" },\n"
    "  { op = \"add\", name = \"X-Gateway\", value = \"arc\" },\n"
    "  { op = \"remove\", name = \"X-Debug\" },\n"
    "]\n"
    "response_headers = [\n"
    "  { op = \"set\", name = \"Strict-Transport-Security\", value = \"max-age=31536000\" },\n"
    "  { op = \"remove\", name = \"Server\" },\n"
    "]\n"
    "\n"
    "[routes.action.forwarded]\n"
    "x_forwarded_for = true\n"
    "x_forwarded_proto = true\n"
    "via = true\n"
    "trusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\"]\n"
    "\n"
    "[routes.rate_limit]\n"
    "qps = 50\n"
    "burst = 100\n"
    "algorithm = \"gcra\"\n"
    "key = { by = \"client_ip\", ipv6_prefix = 64 }\n"
    "status = 429\n"
    "headers = \"always\"\n"
    "legacy_headers = false\n"
    "max_keys = 100000\n"
    "scope = \"local\"\n"
    "\n"
    "[[routes]]\n"
    "name = \"old-docs\"\n"
    "match = { path = \"/docs/{page}\" }\n"
    "action.redirect = { status = 301, location = \"https://docs.example.com/{page}?$quer"
    "y\" }\n"
    "\n"
    "[[routes]]\n"
    "name = \"health\"\n"
    "match = { path = \"/healthz\", methods = [\"GET\", \"HEAD\"] }\n"
    "\n"
    "[routes.action.respond]\n"
    "status = 200\n"
    "body = \"\"\"\n"
    "ok\n"
    "\"\"\"\n"
    "headers = { Content-Type = \"text/plain\", Cache-Control = \"no-store\" }\n"
    "\n"
    "[[routes]]\n"
    "name = \"fallback\"\n"
    "match.path = \"/{*rest}\"\n"
    "action.upstream = \"legacy\"\n"
    "\n"
    "[security.limits]\n"
    "max_header_bytes = \"32kb\"\n"
    "max_headers = 100\n"
    "max_uri = \"8kb\"\n"
    "\n"
    "[observability]\n"
    "metrics_bind = \"127.0.0.1:9090\"\n"
    "metrics_enabled = true\n";

static void test_same_config_full_example(void)
{
    struct arc_config_errors e = { 0 };
    struct arc_config *y = NULL;
    CHECK_INT(arc_config_load_file("examples/arc.yaml", &y, &e), 0);
    arc_config_errors_print(&e, stderr);
    arc_config_errors_dispose(&e);
    struct arc_config *t = must_load("toml", arc_toml);
    if (y && t) {
        CHECK_STR(t->canonical_json, y->canonical_json);
        CHECK_STR(t->fingerprint, y->fingerprint);
        CHECK_INT(t->n_routes, 4);
        CHECK_STR(t->routes[2].respond_body, "ok\n");
    }
    arc_config_free(y);
    arc_config_free(t);
}

/* Schema errors in a TOML file point where they do in YAML: unknown keys at
 * the key, bad values at the value, a missing key at the [[header]]. */
static void test_schema_positions(void)
{
    CHECK_FAILS("toml",
                "[[listeners]]\n"
                "name = \"http\"\n"
                "kind = \"http\"\n"
                "bind = \"127.0.0.1:0\"\n"
                "bakclog = 5\n"
                "[[upstreams]]\n"
                "name = \"app\"\n"
                "discovery = { type = \"static\", endpoints = [{ address = \"127.0.0.1:1\" }] }\n"
                "timeouts.connect = \"2 s\"\n",
                2, 5, 1, "unknown key 'bakclog' in listeners[0]");
    CHECK_FAILS("toml",
                "[[listeners]]\n"
                "name = \"http\"\n"
                "kind = \"http\"\n"
                "bind = \"127.0.0.1:0\"\n"
                "[[upstreams]]\n"
                "name = \"app\"\n"
                "discovery = { type = \"static\", endpoints = [{ address = \"127.0.0.1:1\" }] }\n"
                "timeouts.connect = \"2 s\"\n",
                1, 8, 20, "upstreams[0].timeouts.connect: invalid duration '2 s'");
    CHECK_FAILS("toml",
                "[[listeners]]\n"
                "name = \"http\"\n"
                "kind = \"http\"\n"
                "bind = \"127.0.0.1:0\"\n"
                "\n"
                "  [[upstreams]]\n"
                "  discovery = { type = \"static\", endpoints = [{ address = \"127.0.0.1:1\" }] }\n",
                1, 6, 3, "missing required key 'name'");
    /* a reader error stops the load before the schema */
    CHECK_FAILS("toml", "[[listeners]]\nname = http\n", 1, 2, 8, "invalid value 'http'");
}

int main(void)
{
    RUN(test_spec_valid);
    RUN(test_spec_special_floats);
    RUN(test_spec_invalid);
    RUN(test_strings);
    RUN(test_numbers);
    RUN(test_datetimes);
    RUN(test_positions);
    RUN(test_redefinitions);
    RUN(test_limits);
    RUN(test_empty_bom_utf8);
    RUN(test_same_config_quickstart);
    RUN(test_same_config_routes);
    RUN(test_same_config_full_example);
    RUN(test_schema_positions);
    return TEST_REPORT();
}
