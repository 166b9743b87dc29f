"""The official `openai` SDK (Chat Completions) through infergate to any provider kind: chat,
stream, and a full tool-call round trip, translated both ways where the provider speaks
another format."""
import json
import os
import sys

from checkrunner import run_checks

import openai

client = openai.OpenAI(base_url=os.environ["INFERGATE_URL"] + "/v1", api_key=os.environ.get("INFERGATE_KEY", "x"), max_retries=0, timeout=20)
MODEL = os.environ.get("INFERGATE_MODEL", "gpt-4o-mini")
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}]


def check_chat():
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}])
    assert r.object == "chat.completion" and r.choices[0].message.content, r
    assert r.choices[0].finish_reason == "stop", r
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage


def check_stream():
    text, finish, usage = "", None, None
    for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count"}], stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text and finish == "stop", (text, finish)
    assert usage is not None and usage.completion_tokens > 0


def check_tool_round_trip():
    msgs = [{"role": "user", "content": "What's the weather in Paris?"}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, tools=TOOLS)
    assert r.choices[0].finish_reason == "tool_calls", r
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.id, call
    assert "location" in json.loads(call.function.arguments)
    msgs += [r.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}]
    r2 = client.chat.completions.create(model=MODEL, messages=msgs, tools=TOOLS)
    assert r2.choices[0].finish_reason == "stop" and r2.choices[0].message.content, r2


def check_streamed_tool_call():
    name, args, finish = "", "", None
    for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "weather in Oslo"}], tools=TOOLS, stream=True):
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            finish = c.finish_reason or finish
    assert name == "get_weather", name
    assert "location" in json.loads(args), args
    assert finish == "tool_calls", finish


def check_unsupported_field_is_a_named_400():
    # A field the provider's format cannot carry (INFERGATE_REFUSED, default `seed`); skipped
    # when the provider speaks Chat Completions itself and takes every field.
    field = os.environ.get("INFERGATE_REFUSED", "seed")
    if field == "-":
        return
    value = {"seed": 7, "logit_bias": {"50256": -100}}[field]
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], **{field: value})
    except openai.BadRequestError as e:
        assert field in str(e.message) and "provider" in str(e.message), e.message
        return
    raise AssertionError("expected BadRequestError naming the field")


if __name__ == "__main__":
    sys.exit(run_checks(globals(), "openai sdk (translated)"))
