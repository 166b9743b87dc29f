"""The official `anthropic` Python SDK against a running infergate (`POST /v1/messages`).

Run by tests/dialects.rs with INFERGATE_URL and INFERGATE_KEY; the alias `claude` routes to
whichever provider kind the test configured (translated or passed through).
"""
import os
import sys

from checkrunner import run_checks

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ["INFERGATE_URL"], api_key=os.environ.get("INFERGATE_KEY", "unused"), max_retries=0, timeout=20
)
MODEL = os.environ.get("INFERGATE_ANTHROPIC_MODEL", "claude")
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def check_message():
    m = client.messages.create(
        model=MODEL, max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "hello there"}]
    )
    assert m.type == "message" and m.role == "assistant", m
    assert m.content[0].type == "text" and m.content[0].text, m
    assert m.stop_reason in ("end_turn", "max_tokens"), m.stop_reason
    assert m.usage.output_tokens > 0


def check_stream():
    text, events = "", []
    with client.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "count"}]) as s:
        for event in s:
            events.append(event.type)
        final = s.get_final_message()
    text = "".join(b.text for b in final.content if b.type == "text")
    assert events[0] == "message_start", events
    assert "content_block_delta" in events and events[-1] == "message_stop", events
    assert text, "no streamed text"
    assert final.stop_reason == "end_turn", final.stop_reason


def check_tool_round_trip():
    first = client.messages.create(
        model=MODEL,
        max_tokens=128,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use", first
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.id, call
    assert "location" in call.input, call.input
    second = client.messages.create(
        model=MODEL,
        max_tokens=128,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C, sunny"}]},
        ],
    )
    assert second.stop_reason == "end_turn", second
    assert second.content[0].type == "text"


def check_streamed_tool_call():
    with client.messages.stream(
        model=MODEL,
        max_tokens=128,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather in Tokyo please"}],
    ) as s:
        final = s.get_final_message()
    call = next(b for b in final.content if b.type == "tool_use")
    assert call.name == "get_weather" and "location" in call.input, call
    assert final.stop_reason == "tool_use"


def check_count_tokens():
    r = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hello world " * 10}])
    assert r.input_tokens > 0


def check_unknown_model_is_not_found():
    try:
        client.messages.create(model="no-such", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    except anthropic.NotFoundError as e:
        assert e.status_code == 404
        assert e.body["error"]["type"] == "not_found_error", e.body
        return
    raise AssertionError("expected NotFoundError")


def check_bad_request_is_anthropic_shaped():
    try:
        client.messages.create(model=MODEL, max_tokens=8, messages="nope")
    except anthropic.BadRequestError as e:
        assert e.body["type"] == "error" and e.body["error"]["type"] == "invalid_request_error", e.body
        return
    raise AssertionError("expected BadRequestError")


def check_wrong_key():
    bad = anthropic.Anthropic(base_url=os.environ["INFERGATE_URL"], api_key="wrong", max_retries=0)
    try:
        bad.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    except anthropic.AuthenticationError as e:
        assert e.status_code == 401
        return
    raise AssertionError("expected AuthenticationError")


if __name__ == "__main__":
    sys.exit(run_checks(globals(), "anthropic sdk"))
