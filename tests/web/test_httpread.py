"""`monitor_agent.httpread.frame`: where a request ends, from any prefix of its bytes.

The request-reading worker trusts it to hand a thread only whole requests: a prefix must never
look complete, the whole request must, and bytes of a pipelined next request must not be
counted in (properties over generated requests, bodies and chunkings)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor_agent.httpread import MAX_BODY_BYTES, frame, refusal, without_expect

HEAD = b"POST /api/federation/settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, i = [], 0
    for size in sizes:
        if i >= len(body):
            break
        part = body[i : i + size]
        out.append(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
        i += size
    if i < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - i, body[i:]))
    return b"".join(out) + b"0\r\n\r\n"


requests = st.one_of(
    st.binary(max_size=3000).map(lambda b: HEAD + b"Content-Length: %d\r\n\r\n" % len(b) + b),
    st.tuples(st.binary(max_size=3000), st.lists(st.integers(1, 700), max_size=8)).map(
        lambda t: HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(*t)
    ),
    st.just(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n"),
)


@given(requests, st.binary(max_size=40))
def test_only_the_whole_request_is_complete(request, pipelined):
    for cut in range(0, len(request), max(1, len(request) // 50)):
        assert frame(request[:cut]).state == "incomplete", cut
    found = frame(request + pipelined)
    assert found.state == "complete" and found.end == len(request)


@settings(max_examples=25)
@given(st.integers(MAX_BODY_BYTES + 1, 2 * MAX_BODY_BYTES), st.integers(64, 8192))
def test_bodies_over_the_limit_are_refused_before_they_arrive(size, chunk):
    declared = HEAD + b"Content-Length: %d\r\n\r\n" % size
    assert frame(declared).status == 413
    request = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * size, [chunk] * (size // chunk + 1))
    # Refused as soon as the chunk sizes announced pass the limit, not when the body ends.
    cuts = [*range(len(HEAD), len(request), 1024), len(request)]
    refused_at = next(n for n in cuts if frame(request[:n]).state == "refuse")
    per_chunk = chunk + len(b"%x;ext=1\r\n\r\n" % chunk)
    within_limit = -(-MAX_BODY_BYTES // chunk)  # chunks sent before the one that crosses the limit
    assert refused_at - len(HEAD) <= (within_limit + 1) * per_chunk + 1024


def test_malformed_framing_goes_to_gunicorn_or_is_refused():
    both = HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"
    assert frame(both).state == "dispatch"  # gunicorn answers 400 (request smuggling)
    assert frame(HEAD + b"Content-Length: -1\r\n\r\n").state == "dispatch"
    assert frame(HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n").state == "dispatch"
    assert frame(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"0" * 2000).status == 400
    assert frame(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 40_000).status == 431


def test_expect_continue_and_refusals():
    waiting = HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    assert frame(waiting).expects_continue
    assert b"Expect" not in without_expect(waiting + b"hello", len(waiting))
    assert without_expect(waiting + b"hello", len(waiting)).endswith(b"\r\n\r\nhello")
    answer = refusal(413)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in answer
    assert answer.endswith(b'"payload_too_large","message":"request body too large: at most 16384 bytes"}}')
