"""The official `openai` Python SDK over HTTP/2 and TLS: httpx with `http2=True` trusting the
test CA (INFERGATE_CA), against a gateway at INFERGATE_URL (https://localhost:PORT).

Run by tests/client_http2_tls.rs. Each check raises on failure.
"""
import os
import sys

import openai

try:  # the openai SDK's own HTTP client: httpx2 in its newer releases, httpx before
    import httpx2 as httpx
except ImportError:
    import httpx

from checkrunner import run_checks

versions = []
http = httpx.Client(
    http2=True,
    verify=os.environ["INFERGATE_CA"],
    event_hooks={"response": [lambda r: versions.append(r.http_version)]},
)
client = openai.OpenAI(
    base_url=os.environ["INFERGATE_URL"] + "/v1",
    api_key="unused",
    max_retries=0,
    timeout=20,
    http_client=http,
)


def check_chat_over_http2():
    versions.clear()
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content, r
    assert versions == ["HTTP/2"], versions


def check_stream_over_http2():
    versions.clear()
    text = ""
    chunks = 0
    with client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "stream please"}], stream=True
    ) as stream:
        for chunk in stream:
            chunks += 1
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
    assert chunks >= 3, chunks
    assert text, "no streamed text"
    assert versions == ["HTTP/2"], versions


def check_many_calls_share_one_connection():
    for i in range(10):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])
    assert all(v == "HTTP/2" for v in versions), versions


def check_models():
    models = client.models.list()
    assert [m.id for m in models.data] == ["m"], models


sys.exit(run_checks(dict(globals()), "openai over http2"))
