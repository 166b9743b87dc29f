"""Runs the openai (Chat Completions and Responses) and anthropic SDK checks once per model
alias in INFERGATE_MODELS (comma-separated), in one process so the SDKs are imported once.
Run by tests/sdk_matrix.rs, one alias per OpenAI-compatible preset."""
import importlib
import os
import sys

from checkrunner import run_checks

os.environ.setdefault("INFERGATE_REFUSED", "-")
os.environ.setdefault("INFERGATE_NATIVE_RESPONSES", "0")
SCRIPTS = ["openai_tools_check", "anthropic_sdk_check", "responses_sdk_check"]
modules = [importlib.import_module(name) for name in SCRIPTS]

failed_runs = 0
for model in os.environ["INFERGATE_MODELS"].split(","):
    for name, module in zip(SCRIPTS, modules):
        module.MODEL = model
        failed_runs += run_checks(vars(module), f"{name} via {model}")
print(f"sdk presets: {failed_runs} script run(s) failed")
sys.exit(1 if failed_runs else 0)
