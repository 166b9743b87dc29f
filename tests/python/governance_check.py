"""The official `openai` and `anthropic` Python SDKs meet the gateway's rate limits.

Run by tests/governance.rs with INFERGATE_URL, INFERGATE_OPENAI_KEY and INFERGATE_ANTHROPIC_KEY:
two keys limited to 2 requests a minute each, on the alias `mock-model`.
"""
import os
import sys

from checkrunner import run_checks

import anthropic
import openai

URL = os.environ["INFERGATE_URL"]
oa = openai.OpenAI(base_url=URL + "/v1", api_key=os.environ["INFERGATE_OPENAI_KEY"], max_retries=0, timeout=20)
an = anthropic.Anthropic(base_url=URL, api_key=os.environ["INFERGATE_ANTHROPIC_KEY"], max_retries=0, timeout=20)


def check_openai_sees_its_limit_then_a_rate_limit_error():
    raw = oa.chat.completions.with_raw_response.create(
        model="mock-model", messages=[{"role": "user", "content": "hi"}], max_tokens=16
    )
    assert raw.headers["x-ratelimit-limit-requests"] == "2", dict(raw.headers)
    assert raw.headers["x-ratelimit-remaining-requests"] == "1", dict(raw.headers)
    assert raw.headers["x-ratelimit-reset-requests"], dict(raw.headers)
    assert raw.parse().choices[0].message.content
    oa.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "hi"}], max_tokens=16)
    try:
        oa.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "hi"}], max_tokens=16)
    except openai.RateLimitError as e:
        assert e.status_code == 429
        assert e.code == "rate_limit_exceeded", e.body
        assert "key request limit of 2 per minute" in e.message, e.message
        assert int(e.response.headers["retry-after"]) >= 1
        assert e.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert os.environ["INFERGATE_OPENAI_KEY"] not in e.response.text
    else:
        raise AssertionError("the third request in a minute was not refused")


def check_anthropic_gets_a_rate_limit_error_in_its_own_shape():
    for _ in range(2):
        m = an.messages.create(model="mock-model", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
        assert m.content[0].text
    try:
        an.messages.create(model="mock-model", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    except anthropic.RateLimitError as e:
        assert e.status_code == 429
        assert e.body["type"] == "error" and e.body["error"]["type"] == "rate_limit_error", e.body
        assert "key request limit" in e.body["error"]["message"], e.body
        assert int(e.response.headers["retry-after"]) >= 1
    else:
        raise AssertionError("the third request in a minute was not refused")


if __name__ == "__main__":
    sys.exit(run_checks(globals(), "governance SDK checks"))
