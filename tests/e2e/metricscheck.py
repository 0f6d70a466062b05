"""A strict reader of the Prometheus text format (0.0.4) for the tests: it
fails on anything a scraper could misread, where the lenient parse_metrics
of arcproc.py skips what it does not understand."""
import math
import re
import shutil
import subprocess

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
LABEL_RE = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"' % LNAME)
HELP_RE = re.compile(r"^# HELP (%s) ((?:[^\\\n]|\\[\\n])*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)


def _labels(s, line):
    """Labels of a sample: exact syntax, no duplicates, nothing left over."""
    out = {}
    pos = 0
    while pos < len(s):
        m = LABEL_RE.match(s, pos)
        assert m, "bad label syntax at %r in: %s" % (s[pos:], line)
        k, v = m.group(1), m.group(2)
        assert k not in out, "label %s twice in: %s" % (k, line)
        out[k] = v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        pos = m.end()
        if pos < len(s):
            assert s[pos] == ",", "expected ',' at %r in: %s" % (s[pos:], line)
            pos += 1
    return out


def _family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def parse_strict(text):
    """{family: {"type", "help", "samples": [(name, labels dict, value)]}};
    asserts on every rule of the format and on histogram consistency."""
    assert text.endswith("\n"), "exposition must end with a newline"
    fams, types, order = {}, {}, []
    current = None
    seen = set()
    for line in text.split("\n")[:-1]:
        assert line, "empty line in exposition"
        if line.startswith("#"):
            m = HELP_RE.match(line) or TYPE_RE.match(line)
            assert m, "bad comment line: %r" % line
            name = m.group(1)
            f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            if line.startswith("# HELP"):
                assert f["help"] is None, "HELP twice for %s" % name
                assert m.group(2).strip(), "empty HELP for %s" % name
                f["help"] = m.group(2)
            else:
                assert f["type"] is None, "TYPE twice for %s" % name
                assert not f["samples"], "TYPE after samples for %s" % name
                f["type"] = types[name] = m.group(2)
            if name not in order:
                order.append(name)
            current = name
            continue
        m = SAMPLE_RE.match(line)
        assert m, "bad sample line: %r" % line
        name, lab, val = m.group(1), m.group(2) or "", m.group(3)
        fam = _family_of(name, types)
        assert fam in fams and fams[fam]["type"] and fams[fam]["help"], \
            "sample of %s without HELP and TYPE before it: %s" % (fam, line)
        assert fam == current, "samples of %s not grouped with their family: %s" % (fam, line)
        labels = _labels(lab, line)
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen, "duplicate series: %s" % line
        seen.add(key)
        v = float(val)          # raises on garbage
        assert not math.isnan(v), line
        t = fams[fam]["type"]
        if t == "counter":
            assert name.endswith("_total"), "counter without _total: %s" % name
            assert v >= 0, line
        fams[fam]["samples"].append((name, labels, v))
    for name, f in fams.items():
        assert f["type"] and f["help"], "family %s lacks HELP or TYPE" % name
        if f["type"] == "histogram":
            check_histogram(name, f["samples"])
    return fams


def check_histogram(name, samples):
    """Per label set: le ascending and unique, cumulative counts never
    decreasing, +Inf present and equal to _count, _sum present."""
    groups = {}
    for n, labels, v in samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if n == name + "_bucket":
            assert "le" in labels, "bucket without le in %s" % name
            g["buckets"].append((float(labels["le"]), v))
        elif n == name + "_sum":
            g["sum"] = v
        elif n == name + "_count":
            g["count"] = v
        else:
            raise AssertionError("unexpected series %s in histogram %s" % (n, name))
    for rest, g in groups.items():
        b = g["buckets"]
        assert b, "%s%s has no buckets" % (name, rest)
        les = [le for le, _ in b]
        assert les == sorted(les) and len(set(les)) == len(les), "%s%s: le not ascending" % (name, rest)
        assert les[-1] == math.inf, "%s%s: no +Inf bucket" % (name, rest)
        counts = [c for _, c in b]
        assert all(x <= y for x, y in zip(counts, counts[1:])), \
            "%s%s: buckets decrease: %s" % (name, rest, counts)
        assert g["count"] is not None and g["sum"] is not None, "%s%s: no _sum/_count" % (name, rest)
        assert counts[-1] == g["count"], "%s%s: +Inf %s != _count %s" % (name, rest, counts[-1], g["count"])


def promtool_check(text):
    """promtool's own lint and parse (Debian's prometheus package); None if
    promtool is not installed, else (returncode, output)."""
    exe = shutil.which("promtool")
    if not exe:
        return None
    r = subprocess.run([exe, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def series(fams, name, **want):
    """Samples (labels, value) of series `name` whose labels include `want`."""
    fam = fams.get(name) or {"samples": []}
    base = name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in fams:
            fam = fams[name[: -len(suffix)]]
    return [(l, v) for n, l, v in fam["samples"] if n == base and all(l.get(k) == x for k, x in want.items())]


def total(fams, name, **want):
    return sum(v for _, v in series(fams, name, **want))


def buckets(fams, name, **want):
    """[(le, cumulative count)] of one histogram series (labels `want`)."""
    out = [(float(l["le"]), v) for l, v in series(fams, name + "_bucket", **want)]
    return sorted(out)


def histogram_quantile(q, bks):
    """Prometheus' histogram_quantile over cumulative (le, count) buckets."""
    if not bks or bks[-1][1] == 0:
        return math.nan
    rank = q * bks[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in bks:
        if c >= rank:
            if le == math.inf:
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le
