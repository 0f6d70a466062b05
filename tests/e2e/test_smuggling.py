"""Request-smuggling and malformed-framing vectors are rejected with 400 and
the connection is closed (RFC 9112 §2.2, §5, §6, §7.1), and nothing smuggled
behind them ever reaches the upstream."""
import pytest

from arcproc import make_config, upstream_conf

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

# Vectors rejected while parsing the head: 400 + Connection: close + close.
HEAD_VECTORS = {
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te_and_cl": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "cl_not_digits": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4a\r\n\r\nabcd" + SMUGGLED,
    "cl_negative": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n" + SMUGGLED,
    "cl_plus_sign": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd" + SMUGGLED,
    "cl_hex": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nabcd" + SMUGGLED,
    "cl_inner_space": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\nabcdefghij" + SMUGGLED,
    "cl_list_differs": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 40\r\n\r\nabcd" + SMUGGLED,
    "cl_duplicate_differs": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd" + SMUGGLED,
    "cl_overflow": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551620\r\n\r\nabcd" + SMUGGLED,
    "cl_empty": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n" + SMUGGLED,
    "te_chunked_not_final": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te_chunked_twice": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te_on_http10": b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te_space_before_colon": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "cl_space_before_colon": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nabcde" + SMUGGLED,
    "te_vertical_tab": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "obs_fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo: a\r\n b\r\n\r\n",
    "obs_fold_te": b"POST / HTTP/1.1\r\nHost: a\r\nX-Foo: a\r\n\tTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "bare_cr_in_value": b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo: a\rb\r\n\r\n",
    "bare_cr_line_end": b"GET / HTTP/1.1\r\nHost: a\rX-Foo: b\r\n\r\n",
    "bare_lf_line_end": b"GET / HTTP/1.1\nHost: a\n\n",
    "nul_in_value": b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo: a\x00b\r\n\r\n",
    "bad_header_name": b"GET / HTTP/1.1\r\nHost: a\r\nBad[Name]: x\r\n\r\n",
    "space_in_header_name": b"GET / HTTP/1.1\r\nHost: a\r\nX Foo: x\r\n\r\n",
    "missing_host": b"GET / HTTP/1.1\r\n\r\n",
    "duplicate_host": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad_method_token": b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad_version": b"GET / HTTP/1.x\r\nHost: a\r\n\r\n",
    "target_not_origin_form": b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
    "request_line_double_space": b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
}

# Bad chunked framing in the body: found after the head was accepted.
BODY_VECTORS = {
    "chunk_size_not_hex": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_size_overflow": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000a\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_missing_crlf": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" + SMUGGLED,
    "chunk_lf_only": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n" + SMUGGLED,
    "chunk_size_negative": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_bare_cr_in_ext": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\rb\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
}


@pytest.fixture
def proxy(arc, servers):
    up = servers.http(name="echo")
    return arc(make_config([upstream_conf("echo", up.addr)], workers=1)), up


@pytest.mark.parametrize("name", sorted(HEAD_VECTORS))
def test_head_vector_is_400_and_close(proxy, name):
    a, up = proxy
    c = a.client(timeout=5)
    c.send(HEAD_VECTORS[name])
    r = c.response()
    assert r.status == 400, "%s: expected 400, got %r" % (name, r)
    assert "close" in r.headers.tokens("connection"), "%s: 400 without Connection: close" % name
    assert c.wait_closed(5), "%s: connection not closed after 400" % name
    assert b"HTTP/1.1" not in c.trailing, "%s: a second response followed the 400: %r" % (name, c.trailing)
    assert "/smuggled" not in up.targets()
    assert up.accepted == 0, "%s: request reached the upstream" % name


@pytest.mark.parametrize("name", sorted(BODY_VECTORS))
def test_body_vector_is_rejected(proxy, name):
    # The head was valid, so it already went upstream; the framing error is
    # found before any response byte was sent, so arc still owes (and sends)
    # the 400 with Connection: close, then closes.
    a, up = proxy
    c = a.client(timeout=5)
    c.send(BODY_VECTORS[name])
    r = c.response()
    assert r.status == 400, "%s: expected 400, got %r" % (name, r)
    assert "close" in r.headers.tokens("connection"), "%s: 400 without Connection: close" % name
    assert c.wait_closed(5), "%s: connection not closed" % name
    assert b"HTTP/1.1" not in c.trailing, "%s: a second response followed the 400: %r" % (name, c.trailing)
    assert "/smuggled" not in up.targets()


def test_valid_request_after_rejected_one_on_new_connection(proxy):
    a, up = proxy
    c = a.client(timeout=5)
    c.send(HEAD_VECTORS["cl_and_te"])
    assert c.response().status == 400
    r = a.client().request("GET", "/fine")
    assert r.status == 200
