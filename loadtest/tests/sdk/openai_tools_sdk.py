"""mockllm's OpenAI tool calls through the official `openai` SDK.

Run by tests/sdk.rs with MOCK_URL set; prints "ok" when every check passed,
"skip" when the SDK is not installed.
"""
import json
import os
import sys

try:
    import openai
except ImportError:
    print("skip")
    sys.exit(0)

client = openai.OpenAI(base_url=os.environ["MOCK_URL"] + "/v1", api_key="test-key", max_retries=0)
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]
MESSAGES = [{"role": "user", "content": "weather in Paris?"}]

c = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS)
msg = c.choices[0].message
assert c.choices[0].finish_reason == "tool_calls"
assert msg.content is None and len(msg.tool_calls) == 1
call = msg.tool_calls[0]
assert call.id.startswith("call_") and call.type == "function"
assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}

with client.chat.completions.stream(
    model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, extra_headers={"x-mock-tool-calls": "2"}
) as stream:
    final = stream.get_final_completion()
calls = final.choices[0].message.tool_calls
assert final.choices[0].finish_reason == "tool_calls"
assert [json.loads(t.function.arguments) for t in calls] == [{"city": "Paris"}, {"city": "Tokyo"}], calls
assert calls[0].id != calls[1].id

answer = client.chat.completions.create(
    model="gpt-4o-mini",
    tools=TOOLS,
    messages=MESSAGES + [
        msg.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C sunny"},
    ],
)
assert answer.choices[0].finish_reason == "stop"
assert "18C sunny" in answer.choices[0].message.content, answer.choices[0].message.content
print("ok")
