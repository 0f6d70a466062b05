"""docs/configuration.md documents every key the config schema accepts (the
`tls` sections through docs/tls.md, which it links for them): the
key tables of src/config/schema*.c (`static const struct arc_conf_key
name[] = { { "key", flags }, ... };`) are read from the source, and every key
not marked LATER (refused as "not supported yet") must appear in the doc in
code style, alone or as the last part of a dotted path. Keys marked LATER
must not be documented as supported."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = re.compile(r"static const struct arc_conf_key (\w+)\[\] = \{(.*?)\};", re.S)
ENTRY = re.compile(r'\{\s*"([a-z0-9_]+)"\s*,\s*([A-Z0-9_| ]+)\s*\}')


def schema_keys():
    keys = []
    for path in sorted(glob.glob(os.path.join(ROOT, "src/config/schema*.c"))):
        with open(path) as f:
            src = f.read()
        for table, body in TABLE.findall(src):
            for key, flags in ENTRY.findall(body):
                keys.append((os.path.basename(path), table, key, "LATER" in flags))
    return keys


def test_schema_tables_are_found():
    keys = schema_keys()
    tables = {t for _, t, _, _ in keys}
    # the parser must keep up with the source: these tables certainly exist
    assert {"top_keys", "node_keys", "listener_keys"} <= tables, sorted(tables)
    assert len(keys) > 80, len(keys)


def test_every_accepted_key_is_documented():
    doc = ""
    for name in ("docs/configuration.md", "docs/tls.md"):
        with open(os.path.join(ROOT, name)) as f:
            doc += f.read()
    code = re.findall(r"`([^`\n]+)`", doc)
    documented = set()
    for c in code:
        for part in re.split(r"[\s,{}()\[\]:=]+", c):
            for seg in part.split("."):
                documented.add(seg.strip())
    missing = ["%s %s: %s" % (f, t, k) for f, t, k, later in schema_keys()
               if not later and k not in documented]
    assert not missing, "keys the schema accepts but docs/configuration.md does not mention:\n" + \
        "\n".join(missing)
