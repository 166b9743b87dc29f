"""The official `openai` SDK's Responses API (`client.responses`) through infergate: a plain
answer, a stream, and a full tool-call round trip, against whichever provider kind the test
configured (OpenAI's own Responses API passed through, or any other provider translated).

Run by tests/sdk_matrix.rs with INFERGATE_URL, INFERGATE_KEY and INFERGATE_MODEL;
INFERGATE_NATIVE_RESPONSES=1 when the provider serves the Responses API itself.
"""
import json
import os
import sys

from checkrunner import run_checks

import openai

client = openai.OpenAI(
    base_url=os.environ["INFERGATE_URL"] + "/v1",
    api_key=os.environ.get("INFERGATE_KEY", "x"),
    max_retries=0,
    timeout=20,
)
MODEL = os.environ.get("INFERGATE_MODEL", "gpt-4o-mini")
NATIVE = os.environ.get("INFERGATE_NATIVE_RESPONSES") == "1"
TOOLS = [{
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}]


def check_create():
    r = client.responses.create(model=MODEL, instructions="Be brief.", input="hello there", max_output_tokens=64)
    assert r.object == "response" and r.status == "completed", r
    assert r.output_text, r
    assert r.output[-1].type == "message" and r.output[-1].role == "assistant", r.output
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage


def check_stream():
    types, text, final = [], "", None
    for event in client.responses.create(model=MODEL, input="count to three", stream=True):
        types.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            final = event.response
    assert types[0] == "response.created", types
    assert types[-1] == "response.completed", types
    seq = [t for t in types if t.startswith("response.output_item")]
    assert seq[0] == "response.output_item.added" and seq[-1] == "response.output_item.done", types
    assert text and final is not None and final.output_text == text, (text, final)
    assert final.usage.output_tokens > 0


def check_tool_round_trip():
    history = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.responses.create(model=MODEL, input=history, tools=TOOLS)
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls, first.output
    call = calls[0]
    assert call.name == "get_weather" and call.call_id, call
    assert "location" in json.loads(call.arguments), call.arguments
    # The agent loop: the model's output items go back as input, with the tool's result.
    history += [o.model_dump(exclude_none=True) for o in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"})
    second = client.responses.create(model=MODEL, input=history, tools=TOOLS)
    assert second.status == "completed" and second.output_text, second


def check_streamed_tool_call():
    args, done_items = "", []
    for event in client.responses.create(model=MODEL, input="weather in Oslo", tools=TOOLS, stream=True):
        if event.type == "response.function_call_arguments.delta":
            args += event.delta
        if event.type == "response.output_item.done":
            done_items.append(event.item)
    calls = [i for i in done_items if i.type == "function_call"]
    assert calls and calls[0].name == "get_weather", done_items
    assert json.loads(args) == json.loads(calls[0].arguments), (args, calls[0].arguments)


def check_previous_response_id():
    try:
        client.responses.create(model=MODEL, input="and then?", previous_response_id="resp_does_not_exist")
    except (openai.BadRequestError, openai.NotFoundError) as e:
        if NATIVE:
            # Passed through: the provider looked for the response and did not find it.
            assert "not found" in str(e.message), e.message
        else:
            # Translated: the gateway refuses it, naming the field and the provider.
            assert isinstance(e, openai.BadRequestError), e
            assert "previous_response_id" in str(e.message) and "provider" in str(e.message), e.message
        return
    raise AssertionError("expected previous_response_id to be refused")


if __name__ == "__main__":
    sys.exit(run_checks(globals(), "openai sdk (responses)"))
