"""mockllm's Anthropic dialect through the official `anthropic` SDK.

Run by tests/sdk.rs with MOCK_URL set; prints "ok" when every check passed,
"skip" when the SDK is not installed.
"""
import os
import sys

try:
    import anthropic
except ImportError:
    print("skip")
    sys.exit(0)

URL = os.environ["MOCK_URL"]
client = anthropic.Anthropic(base_url=URL, api_key="test-key", max_retries=0)
MODEL = "claude-mock-1"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"],
    },
}


def check_message():
    m = client.messages.create(
        model=MODEL,
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": "hello sdk"}],
        extra_headers={"x-mock-tokens": "4"},
    )
    assert isinstance(m, anthropic.types.Message), type(m)
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.model == MODEL
    assert m.content[0].type == "text" and m.content[0].text == "Echo: hello sdk hello", m.content
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert m.usage.output_tokens == 4 and m.usage.input_tokens > 0
    assert m.usage.cache_creation_input_tokens == 0 and m.usage.cache_read_input_tokens == 0


def check_stream():
    with client.messages.stream(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": "stream me"}],
        extra_headers={"x-mock-tokens": "5"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: stream me stream me", text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5


def check_tool_use():
    m = client.messages.create(
        model=MODEL,
        max_tokens=64,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    assert m.stop_reason == "tool_use", m.stop_reason
    block = m.content[0]
    assert block.type == "tool_use" and block.id.startswith("toolu_") and block.name == "get_weather"
    assert block.input == {"location": "Paris"}, block.input

    with client.messages.stream(
        model=MODEL,
        max_tokens=64,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"location": "Paris"}

    answer = client.messages.create(
        model=MODEL,
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "18C and sunny"}],
            },
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert "18C and sunny" in answer.content[0].text, answer.content[0].text


def check_count_tokens():
    count = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "count these tokens please"}]
    )
    assert count.input_tokens > 0, count


def check_errors():
    expected = {
        400: anthropic.BadRequestError,
        401: anthropic.AuthenticationError,
        403: anthropic.PermissionDeniedError,
        404: anthropic.NotFoundError,
        429: anthropic.RateLimitError,
        500: anthropic.InternalServerError,
        529: anthropic.OverloadedError,
    }
    for status, exc in expected.items():
        try:
            client.messages.create(
                model=MODEL,
                max_tokens=8,
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-mock-fault": f"status:{status}"},
            )
        except exc as e:
            assert e.status_code == status, (status, e.status_code)
            assert e.body["type"] == "error", e.body
        else:
            raise AssertionError(f"no {exc.__name__} for {status}")
    try:
        with client.messages.stream(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-fault": "error-mid-stream:529", "x-mock-tokens": "6"},
        ) as stream:
            for _ in stream.text_stream:
                pass
    except anthropic.APIStatusError as e:
        assert "overloaded_error" in str(e), str(e)
    else:
        raise AssertionError("no error raised for the error event")


check_message()
check_stream()
check_tool_use()
check_count_tokens()
check_errors()
print("ok")
