"""routes[].split: the upstream of each request is chosen among the split's
choices by weight (at random, or sticky by client address, header or
cookie). Ratios are checked over many requests with a tolerance of several
standard deviations; a key keeps its upstream across connections (and so
across workers)."""
import collections

from arcproc import make_config, metric, upstream_conf


def split_config(ups, weights, key=None, workers=2):
    choices = [{"upstream": "u%d" % i, "weight": w} for i, w in enumerate(weights)]
    sp = {"choices": choices}
    if key:
        sp["key"] = key
    route = {"name": "r", "match": {"path": "/{*rest}"}, "split": sp}
    return make_config([upstream_conf("u%d" % i, u.addr) for i, u in enumerate(ups)],
                       routes=[route], workers=workers)


def test_random_split_follows_weights(arc, servers):
    ups = [servers.http(name="u%d" % i) for i in range(3)]
    a = arc(split_config(ups, [3, 1, 0]))
    c = a.client()
    n = 2000
    got = collections.Counter()
    for _ in range(n):
        r = c.request("GET", "/x")
        assert r.status == 200, r
        got[r.headers.get("X-Upstream")] += 1
    assert got["u2"] == 0, got                       # weight 0: never
    share = got["u0"] / n
    # expected 0.75, sd ~0.0097: 0.05 is over 5 sd
    assert abs(share - 0.75) < 0.05, got
    ms = a.metrics()[0]
    assert metric(ms, "arc_upstream_requests_total", upstream="u0") == got["u0"]
    assert metric(ms, "arc_upstream_requests_total", upstream="u1") == got["u1"]
    assert metric(ms, "arc_requests_total", route="r") >= n


def test_header_split_is_sticky_and_weighted(arc, servers):
    ups = [servers.http(name="u%d" % i) for i in range(3)]
    a = arc(split_config(ups, [1, 1, 2], key={"source": "header", "name": "X-User"}))
    first = a.client()
    where = {}
    for user in range(600):
        r = first.request("GET", "/k", headers={"X-User": "user-%d" % user})
        assert r.status == 200, r
        where[user] = r.headers.get("X-Upstream")
    shares = collections.Counter(where.values())
    # expected 0.25 / 0.25 / 0.5 of the keys (sd <= 0.021 over 600 keys)
    assert abs(shares["u0"] / 600 - 0.25) < 0.08, shares
    assert abs(shares["u1"] / 600 - 0.25) < 0.08, shares
    assert abs(shares["u2"] / 600 - 0.5) < 0.08, shares
    # The same keys from other connections (other workers too) stay put.
    for attempt in range(3):
        c = a.client()
        for user in range(0, 600, 4):
            r = c.request("GET", "/k", headers={"X-User": "user-%d" % user})
            assert r.headers.get("X-Upstream") == where[user], (user, attempt)
        c.close()


def test_cookie_split_sticky_and_keyless_requests_still_served(arc, servers):
    ups = [servers.http(name="u%d" % i) for i in range(2)]
    a = arc(split_config(ups, [1, 1], key={"source": "cookie", "name": "sid"}))
    seen = collections.defaultdict(set)
    for round_ in range(3):
        c = a.client()
        for user in range(40):
            r = c.request("GET", "/", headers={"Cookie": "a=1; sid=s%d; z=2" % user})
            assert r.status == 200, r
            seen[user].add(r.headers.get("X-Upstream"))
        c.close()
    assert all(len(v) == 1 for v in seen.values()), seen
    assert {next(iter(v)) for v in seen.values()} == {"u0", "u1"}
    # Without the cookie: chosen at random, both used.
    c = a.client()
    got = {c.request("GET", "/").headers.get("X-Upstream") for _ in range(60)}
    assert got == {"u0", "u1"}, got
