"""The API's request validation (pure functions): every bad parameter is named in the message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor_agent.web.auth import bearer_matches, ensure_api_token
from monitor_agent.web.validation import (
    BadRequest,
    parse_global_tasks,
    parse_json_object,
    parse_local_tasks,
    parse_settings,
    parse_timestamp,
)


def q(**params):
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (q(limit="abc"), "limit"),
        (q(limit="100000"), "limit"),
        (q(limit="0"), "limit"),
        (q(limit="-5"), "limit"),
        (q(limit="5\n"), "limit"),
        (q(limit="٣"), "limit"),  # Arabic-Indic digit: int() would accept it
        (q(limit=["1", "2"]), "limit"),
        (q(since="yesterday"), "since"),
        (q(since="2024-13-01T00:00:00Z"), "since"),
        (q(since="2024-01-15T10:30:00"), "since"),  # no zone: ambiguous
        (q(chainId="-1"), "chainId"),
        (q(chainId="1.5"), "chainId"),
        (q(chainId=str(2**63)), "chainId"),
        (q(chain_id="1"), "chain_id"),
    ],
)
def test_bad_global_task_parameters_name_the_parameter(params, named):
    with pytest.raises(BadRequest) as exc:
        parse_global_tasks(params)
    assert named in str(exc.value)


def test_global_task_defaults_and_values():
    assert parse_global_tasks({}).limit == 100
    parsed = parse_global_tasks(q(limit="1000", chainId="43113", since="2024-01-15T10:30:00+02:00"))
    assert (parsed.limit, parsed.chain_id) == (1000, 43113)
    assert parsed.since == datetime(2024, 1, 15, 8, 30, tzinfo=UTC)


def test_timestamp_forms():
    assert parse_timestamp("since", "2024-01-15") == datetime(2024, 1, 15, tzinfo=UTC)
    assert parse_timestamp("since", "2024-01-15T10:30:00.123Z").microsecond == 123000
    assert parse_timestamp("since", None) is None


def test_local_task_parameters():
    assert parse_local_tasks(q(status="failed", offset="10")).status == "failed"
    for bad, named in ((q(status="done"), "status"), (q(offset="-1"), "offset"), (q(page="2"), "page")):
        with pytest.raises(BadRequest, match=named):
            parse_local_tasks(bad)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"enabled": "true"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"receiveEnabled": None}, "receiveEnabled"),
        ({"enabled": True, "nodeId": "x"}, "nodeId"),
        ({}, "no settings"),
    ],
)
def test_settings_body(body, named):
    with pytest.raises(BadRequest, match=named):
        parse_settings(body)


def test_settings_subset_accepted():
    assert parse_settings({"broadcastTasks": False}) == {"broadcastTasks": False}


@pytest.mark.parametrize(
    ("body", "ctype", "msg"),
    [
        (b"{", "application/json", "not valid JSON"),
        (b"[1]", "application/json", "JSON object"),
        (b'{"a":1}', "text/plain", "Content-Type"),
        (b"\xff\xfe", "application/json", "UTF-8"),
        (b"[" * 100_000, "application/json", "not valid JSON"),
    ],
)
def test_json_body_errors(body, ctype, msg):
    with pytest.raises(BadRequest, match=msg):
        parse_json_object(body, ctype, allow_empty=False)


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=30), max_size=4))
def test_any_query_is_accepted_or_refused_cleanly(params):
    try:
        parse_global_tasks({k: [v] for k, v in params.items()})
    except BadRequest as exc:
        assert str(exc)


def test_token_generated_once_private_and_compared_exactly(tmp_path):
    first = ensure_api_token(None, tmp_path)
    assert first.created and first.path.stat().st_mode & 0o777 == 0o600
    again = ensure_api_token(None, tmp_path)
    assert not again.created and again.value == first.value
    assert ensure_api_token("x" * 20, tmp_path).value == "x" * 20
    assert bearer_matches(f"Bearer {first.value}", first.value)
    assert bearer_matches(f"bearer {first.value}", first.value)
    assert not bearer_matches(f"Bearer {first.value}x", first.value)
    assert not bearer_matches(f"Basic {first.value}", first.value)
    assert not bearer_matches("Bearer é", first.value)
    assert not bearer_matches(None, first.value)
