"""Request and response bodies of a call, as Kong's AI Proxy logs them with `log_payloads`.

Two levels of detail, one set of functions (`request_body`, `response_body`):

* short (the default, what `forensics synth` writes): the system prompt and the user's message
  only, a response of a few words. Small worlds, quick to ingest, and every field a detector
  reads is there.
* full (`full=True`): the request as a client sends it. The earlier turns of the conversation
  are written out, as long as the history the call's input tokens count (`make_call` counts
  4 characters a token), so body and token count agree; the tool definitions of apps that use
  tools go with every chat request; the answer is as long as its output tokens and tool calls
  carry their arguments. The ingest benchmark measures these (benchmarks/README.md), because
  users' logs carry payloads of this weight.

Both levels answer with the provider's error body when the call failed.
"""

from __future__ import annotations

import random

from forensics.synth.files import dumps
from forensics.synth.traffic import WORDS, Call, words

CHARS_PER_TOKEN = 4  # as make_call counts input tokens from text

# Tools of the apps that define them (a help-centre bot, an order desk, an analyst's SQL runner).
# Names are the ones the responses call.
TOOLS: tuple[dict[str, object], ...] = (
    {
        "type": "function",
        "function": {
            "name": "search_kb",
            "description": "Search the help-centre articles. Returns the best matches with"
            " their ids, titles and a short extract.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look for."},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
                },
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Look up one order by its number: status, items, shipping and"
            " payment events.",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "pattern": "^[0-9]{8}$"},
                    "include": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["items", "shipping", "payments"]},
                    },
                },
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "run_sql",
            "description": "Run one read-only SQL query on the analytics warehouse and return"
            " at most 100 rows as JSON.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "A single SELECT statement."},
                    "timeout_s": {"type": "integer", "minimum": 1, "maximum": 60},
                },
                "required": ["query"],
            },
        },
    },
)
_TOOL_NAMES = ("search_kb", "lookup_order", "run_sql")
_WORD_CHARS = sum(len(w) + 1 for w in WORDS) / len(WORDS)  # a word and its space, on average
_SENTENCE_LENGTHS = (9, 14, 7, 17, 11, 6, 12, 15, 8, 10)  # words


def request_body(rng: random.Random, call: Call, *, full: bool = False) -> dict[str, object]:
    """The body the client sent. Short bodies draw nothing from `rng`."""
    if call.model.endpoint == "embeddings":
        return {"model": call.model.name, "input": call.prompt}
    messages: list[dict[str, object]] = []
    if call.system:
        messages.append({"role": "system", "content": call.system})
    if full:
        messages += _earlier_turns(rng, _history_chars(rng, call))
    messages.append({"role": "user", "content": call.prompt})
    body: dict[str, object] = {"model": call.model.name, "messages": messages}
    if full:
        body["temperature"] = rng.choice((0, 0.2, 0.7, 1))
        body["max_tokens"] = rng.choice((512, 1024, 2048, 4096))
        if call.tool_calls or (call.cred is not None and call.cred.tool_share > 0):
            body["tools"] = list(TOOLS)
            body["tool_choice"] = "auto"
    if call.stream:
        body["stream"] = True
        if full:
            body["stream_options"] = {"include_usage": True}
    if call.user:
        body["user"] = call.user
    return body


def _history_chars(rng: random.Random, call: Call) -> int:
    """Characters of the earlier turns: what the input tokens leave after the system prompt and
    the user's message. A call that never reached the provider has no count; draw one."""
    if call.input_tokens > 0:
        spoken = (len(call.system) + len(call.prompt)) // CHARS_PER_TOKEN
        return CHARS_PER_TOKEN * max(0, call.input_tokens - spoken)
    return CHARS_PER_TOKEN * int(rng.lognormvariate(5.0, 1.0))


def _earlier_turns(rng: random.Random, chars: int) -> list[dict[str, object]]:
    """Pairs of user and assistant turns that add up to about `chars` characters."""
    turns: list[dict[str, object]] = []
    while chars > 0:
        for role, lo, hi in (("user", 40, 400), ("assistant", 200, 2000)):
            text = _text(rng, min(max(chars, 1), rng.randint(lo, hi)))
            turns.append({"role": role, "content": text})
            chars -= len(text)
    return turns


def _text(rng: random.Random, chars: int) -> str:
    """About `chars` characters of sentences from the traffic vocabulary (at least one word).

    Two draws per text (the words, where the sentence lengths start), however long it is."""
    picked = rng.choices(WORDS, k=max(1, round(chars / _WORD_CHARS)))
    lengths = _SENTENCE_LENGTHS
    turn = rng.randrange(len(lengths))
    sentences = []
    i = 0
    while i < len(picked):
        n = lengths[turn % len(lengths)]
        sentences.append(" ".join(picked[i : i + n]).capitalize() + ".")
        i += n
        turn += 1
    return " ".join(sentences)


def error_body(call: Call) -> dict[str, object]:
    """The provider's (or Azure's content filter's) error for a failed call."""
    if call.outcome == "content_filter":
        return {
            "error": {
                "code": "content_filter",
                "message": "The response was filtered due to the prompt triggering the content"
                " management policy.",
                "param": "prompt",
                "status": 400,
            }
        }
    if call.outcome == "upstream_429":
        return {
            "error": {
                "code": "rate_limit_exceeded",
                "type": "tokens",
                "message": f"Rate limit reached for {call.model.name} on tokens per min.",
            }
        }
    if call.outcome == "invalid":
        return {
            "error": {
                "code": "invalid_request_error",
                "type": "invalid_request_error",
                "message": "Invalid 'messages[1].content': expected a string.",
            }
        }
    return {"error": {"type": "server_error", "message": "The server had an error."}}


def response_body(rng: random.Random, call: Call, *, full: bool = False) -> dict[str, object]:
    """The body the provider answered with."""
    if call.outcome != "ok":
        return error_body(call)
    if call.model.endpoint == "embeddings":
        return {
            "object": "list",
            "model": call.model.snapshot,
            "data": [{"object": "embedding", "index": 0, "embedding": "<omitted>"}],
            "usage": {"prompt_tokens": call.input_tokens, "total_tokens": call.input_tokens},
        }
    message: dict[str, object] = {"role": "assistant"}
    if call.tool_calls:
        message["content"] = None
        message["tool_calls"] = [_tool_call(rng, full) for _ in range(call.tool_calls)]
    elif full:
        message["content"] = _text(rng, CHARS_PER_TOKEN * call.output_tokens)
    else:
        message["content"] = words(rng, 3, 12).capitalize() + "."
    usage: dict[str, object] = {
        "prompt_tokens": call.input_tokens,
        "completion_tokens": call.output_tokens,
        "total_tokens": call.input_tokens + call.output_tokens,
    }
    body: dict[str, object] = {
        "id": f"chatcmpl-{rng.getrandbits(96):024x}",
        "object": "chat.completion",
        "model": call.model.snapshot,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if call.tool_calls else "stop",
            }
        ],
        "usage": usage,
    }
    if full:
        body["created"] = int(call.ts)
        usage["prompt_tokens_details"] = {"cached_tokens": call.cached_tokens}
    return body


def _tool_call(rng: random.Random, full: bool) -> dict[str, object]:
    call_id = f"call_{rng.getrandbits(64):016x}"
    name = rng.choice(_TOOL_NAMES)
    function: dict[str, object] = {"name": name}
    if full:
        if name == "search_kb":
            arguments: dict[str, object] = {"query": words(rng, 2, 6), "top_k": 5}
        elif name == "lookup_order":
            arguments = {"order_id": f"{rng.randrange(10**7, 10**8)}", "include": ["shipping"]}
        else:
            column, table = rng.sample(WORDS, 2)
            arguments = {"query": f"SELECT {column}, count(*) FROM {table} GROUP BY 1 LIMIT 100"}
        function["arguments"] = dumps(arguments)
    return {"id": call_id, "type": "function", "function": function}
