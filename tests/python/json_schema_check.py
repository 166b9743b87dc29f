"""The official `openai` and `anthropic` Python SDKs get schema-valid structured output.

Run by tests/json_schema.rs with INFERGATE_URL: the alias `structured` retries an invalid
output once; mockllm's replies are scripted with `x-mock-replies` (invalid first, valid next).
"""
import json
import os
import sys
import uuid

from checkrunner import run_checks

import anthropic
import openai
import pydantic

URL = os.environ["INFERGATE_URL"]
oa = openai.OpenAI(base_url=URL + "/v1", api_key="unused", max_retries=0, timeout=20)
an = anthropic.Anthropic(base_url=URL, api_key="unused", max_retries=0, timeout=20)


class Answer(pydantic.BaseModel):
    answer: str


def script(*replies):
    """A unique script: the invalid and valid replies, then a tag no request reaches."""
    return {"x-mock-replies": json.dumps([*replies, str(uuid.uuid4())])}


def check_openai_parse_gets_the_valid_retry():
    completion = oa.chat.completions.parse(
        model="structured",
        messages=[{"role": "user", "content": "What is six times seven?"}],
        response_format=Answer,
        extra_headers=script("Sure! {\"answer\":", "{\"answer\": \"42\"}"),
    )
    assert completion.choices[0].message.parsed == Answer(answer="42"), completion


def check_openai_sees_a_clear_error_when_no_output_matches():
    try:
        oa.chat.completions.parse(
            model="structured",
            messages=[{"role": "user", "content": "What is six times seven?"}],
            response_format=Answer,
            extra_headers=script("{\"answer\": 42}", "{\"answer\": 42}"),
        )
    except openai.APIStatusError as e:
        assert e.status_code == 502, e
        assert e.body["code"] == "json_schema_violation", e.body
        assert "/answer" in e.body["message"], e.body
    else:
        raise AssertionError("an output that never matched was accepted")


def check_openai_stream_with_a_schema_ends_well():
    with oa.chat.completions.stream(
        model="structured",
        messages=[{"role": "user", "content": "What is six times seven?"}],
        response_format=Answer,
        extra_headers=script("{\"answer\": \"42\"}"),
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Answer(answer="42"), final


def check_anthropic_structured_output_gets_the_valid_retry():
    schema = Answer.model_json_schema() | {"additionalProperties": False}
    message = an.messages.create(
        model="structured",
        max_tokens=64,
        messages=[{"role": "user", "content": "What is six times seven?"}],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
        extra_headers=script("{}", "{\"answer\": \"42\"}"),
    )
    text = "".join(b.text for b in message.content if b.type == "text")
    assert Answer.model_validate_json(text) == Answer(answer="42"), message


if __name__ == "__main__":
    sys.exit(run_checks(globals(), "json schema SDK checks"))
