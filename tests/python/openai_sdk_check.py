"""The official `openai` Python SDK against a running infergate.

Run by tests/python_sdk.rs with INFERGATE_URL (gateway base URL) and INFERGATE_KEY set.
Each check raises on failure; the script exits non-zero if any check failed.
"""
import os
import sys

from checkrunner import run_checks

import openai

BASE = os.environ["INFERGATE_URL"] + "/v1"
KEY = os.environ.get("INFERGATE_KEY", "unused")
client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=20)


def check_chat():
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        temperature=0.1,
    )
    assert r.object == "chat.completion", r
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content, r
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens > 0


def check_chat_raw_headers():
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers.get("x-infergate-request-id"), raw.headers
    assert raw.headers.get("x-infergate-attempts") == "1"
    assert raw.parse().choices[0].message.content


def check_stream():
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "count to five"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, chunks = "", None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                text += c.delta.content
            if c.finish_reason:
                finish = c.finish_reason
    assert chunks > 3, chunks
    assert text, "no streamed text"
    assert finish == "stop", finish
    assert usage is not None and usage.completion_tokens > 0


def check_embeddings():
    r = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(r.data) == 2
    assert len(r.data[0].embedding) > 0


def check_models():
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids, ids


def check_unknown_model_is_not_found():
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError as e:
        assert e.status_code == 404
        assert e.code == "model_not_found", e.body
        return
    raise AssertionError("expected NotFoundError")


def check_bad_request():
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages="not a list")
    except openai.BadRequestError as e:
        assert e.status_code == 400
        assert e.code == "invalid_type", e.body
        return
    raise AssertionError("expected BadRequestError")


def check_wrong_key_is_authentication_error():
    bad = openai.OpenAI(base_url=BASE, api_key="wrong-key", max_retries=0, timeout=20)
    try:
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    except openai.AuthenticationError as e:
        assert e.status_code == 401
        return
    raise AssertionError("expected AuthenticationError")


def check_upstream_error_is_an_api_error():
    # mockllm injects a 500 on request: both targets fail, the SDK sees a server error.
    try:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-fault": "status:500"},
        )
    except openai.InternalServerError as e:
        assert e.status_code == 500
        return
    raise AssertionError("expected InternalServerError")


if __name__ == "__main__":
    sys.exit(run_checks(globals(), "openai sdk"))
