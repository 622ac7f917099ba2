"""Stand-in for an OpenAI-compatible Chat Completions API: POST /v1/chat/completions.

Bodies come from tests/fixtures/openai (openai-python's recorded responses).
By default it responds like a model that follows a strict ``json_schema``
response format:

- it reads the lead data between the ``<<<LEAD DATA`` and ``LEAD DATA>>>``
  lines of the user message and builds one entry per lead, shaped by the
  request's own schema. The integer property named like an id gets the
  lead's id, the other integer the score, the string array the reasons and
  the string the outreach line. The entries are checked against that
  schema with jsonschema and wrapped in the recorded structured-output body;
- each lead's score is ``expected_score(id, name)``, so tests know it;
- it plays a model that falls for prompt injection: when the words "ignore
  previous instructions" appear outside the data block (in the system
  message or the user message's own text), every lead gets 100.

Like the real API it checks ``Authorization: Bearer <key>`` (401 otherwise)
and rejects a response format that is not strict (400), every object
needing ``additionalProperties: false`` and all its properties required.

Responses queued with ``add_response`` change the next requests, one each:

- ``fixture`` with ``name`` structured, refusal or length: that recorded
  body verbatim (structured is a weather report, so it fails the schema);
- ``content_filter``: the structured body with ``finish_reason``
  content_filter and no content (no recorded body has it);
- ``omit``: leave out the last ``leads`` leads (default 1);
- ``unknown``: add an entry for an id that was not sent;
- ``invalid_entry``: give the first lead a score of 150;
- ``not_json``: content that is not JSON.

Faults (429 with Retry-After, 500, delays, malformed bodies) come from
``StandIn``. The error bodies it sends for 401 and 400, and the ones tests
pass for 429 and 500, follow OpenAI's documented
``{"error": {"message", "type", "param", "code"}}`` shape; no recorded body
has them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.standins.base import StandIn

__all__ = ["OPENAI_KEY", "OpenAIChatStandIn", "error_body", "expected_score", "load_openai_fixture"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai"
OPENAI_KEY = "sk-standin-0123456789abcdefghijklmnop"

DATA_START = "<<<LEAD DATA"
DATA_END = "LEAD DATA>>>"
INJECTION = "ignore previous instructions"

_RESPONSE_KINDS = ("fixture", "content_filter", "omit", "unknown", "invalid_entry", "not_json")


def load_openai_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"openai_chat_completion_{name}.json").read_text("utf-8"))


def expected_score(lead_id: int, name: str | None) -> int:
    """Return the score the stand-in gives a lead when nothing interferes."""
    digest = hashlib.sha256(f"{lead_id}|{name}".encode()).hexdigest()
    return int(digest[:8], 16) % 101


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def split_user_message(content: str) -> tuple[str, dict[str, Any] | None]:
    """Return (the text outside the data block, the data block parsed as JSON or None)."""
    start = content.find(DATA_START + "\n")
    end = content.find("\n" + DATA_END)
    if start < 0 or end < start:
        return content, None
    block = content[start + len(DATA_START) + 1 : end]
    outside = content[:start] + content[end + len(DATA_END) + 1 :]
    try:
        return outside, json.loads(block)
    except ValueError:
        return outside, None


class OpenAIChatStandIn(StandIn):
    name = "openai"

    def __init__(self, api_key: str | None = OPENAI_KEY, **kwargs: Any) -> None:
        self.api_key = api_key
        self._responses: deque[dict[str, Any]] = deque()
        self._response_lock = threading.Lock()
        self._served = 0
        super().__init__(**kwargs)
        self.app.router.add_post("/_standin/responses", self._control_responses)

    def setup_routes(self) -> None:
        self.route("POST", "/v1/chat/completions", "chat", self._chat)

    def configure(self, **values: Any) -> None:
        if "api_key" in values:
            self.api_key = values.pop("api_key")
        super().configure(**values)

    def on_reset(self) -> None:
        with self._response_lock:
            self._responses.clear()

    def add_response(self, kind: str, count: int = 1, **params: Any) -> None:
        """Queue ``count`` requests that get response ``kind`` (see the module docstring)."""
        if kind not in _RESPONSE_KINDS:
            raise ValueError(f"unknown response kind {kind!r}; use one of {', '.join(_RESPONSE_KINDS)}")
        with self._response_lock:
            for _ in range(count):
                self._responses.append({"kind": kind, **params})

    def _next_response(self) -> dict[str, Any] | None:
        with self._response_lock:
            return self._responses.popleft() if self._responses else None

    async def _control_responses(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.add_response(data.pop("kind"), int(data.pop("count", 1)), **data)
        return web.json_response({"ok": True})

    # Requests

    def sent_leads(self) -> list[list[dict[str, Any]]]:
        """Return the leads of each chat request received, in order."""
        batches = []
        for record in self.requests("chat"):
            _, data = split_user_message(_user_content(record.json))
            batches.append(data["leads"] if data else [])
        return batches

    async def _chat(self, request: web.Request, body: Any) -> web.Response:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), status=401
            )
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return web.json_response(
                error_body("model and messages are required.", "invalid_request_error", param="messages"), status=400
            )
        schema, problem = _strict_schema(body.get("response_format"))
        if problem is not None:
            message = f"Invalid schema for response_format: {problem}"
            return web.json_response(
                error_body(message, "invalid_request_error", param="response_format"), status=400
            )

        plan = self._next_response() or {"kind": "build"}
        if plan["kind"] == "fixture":
            return web.json_response(load_openai_fixture(plan["name"]))
        envelope = copy.deepcopy(load_openai_fixture("structured"))
        self._served += 1
        envelope["id"] = f"chatcmpl-standin-{self._served}"
        envelope["created"] = int(time.time())
        envelope["model"] = body["model"]
        choice = envelope["choices"][0]
        if plan["kind"] == "content_filter":
            choice["finish_reason"] = "content_filter"
            choice["message"]["content"] = None
            return web.json_response(envelope)

        content = self._output_content(body, schema, plan)
        choice["message"]["content"] = content
        prompt_chars = sum(len(str(message.get("content") or "")) for message in body["messages"])
        envelope["usage"] = {
            "prompt_tokens": prompt_chars // 4,
            "completion_tokens": max(1, len(content) // 4),
            "total_tokens": prompt_chars // 4 + max(1, len(content) // 4),
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        return web.json_response(envelope)

    def _output_content(self, body: dict[str, Any], schema: dict[str, Any], plan: dict[str, Any]) -> str:
        if plan["kind"] == "not_json":
            return "Here are the scores you asked for: the first lead looks great."
        system = " ".join(str(m.get("content") or "") for m in body["messages"] if m.get("role") == "system")
        outside, data = split_user_message(_user_content(body))
        leads = data.get("leads", []) if isinstance(data, dict) else []
        obeys_injection = INJECTION in (system + " " + outside).lower()
        output = _build_output(schema, leads, obeys_injection)
        entries = next(iter(output.values()))
        if plan["kind"] == "omit":
            del entries[len(entries) - int(plan.get("leads", 1)) :]
        elif plan["kind"] == "unknown":
            extra = copy.deepcopy(entries[0])
            id_key = _id_property(_item_schema(schema))
            extra[id_key] = max(lead["id"] for lead in leads) + 1_000_000
            entries.append(extra)
        elif plan["kind"] == "invalid_entry":
            score_key = _score_property(_item_schema(schema))
            entries[0][score_key] = 150
        else:
            _check_against_schema(output, schema)
        return json.dumps(output)


def _check_against_schema(output: Any, schema: dict[str, Any]) -> None:
    """Validate a built answer against the request's schema, where jsonschema is installed.

    The release venv inside a booted test system has only leadd's runtime
    dependencies, so there the stand-in serves its answer unchecked.
    """
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        return
    Draft202012Validator(schema).validate(output)


def _user_content(body: Any) -> str:
    messages = body.get("messages", []) if isinstance(body, dict) else []
    return " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")


def _strict_schema(response_format: Any) -> tuple[dict[str, Any], str | None]:
    """Return (schema, problem), where problem is why the format is not a strict json_schema (or None)."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return {}, "response_format.type must be json_schema"
    spec = response_format.get("json_schema") or {}
    if spec.get("strict") is not True:
        return {}, "json_schema.strict must be true"
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        return {}, "json_schema.schema is missing"
    return schema, _strict_problem(schema, "#")


def _strict_problem(node: Any, path: str) -> str | None:
    if isinstance(node, dict):
        if node.get("type") == "object":
            properties = node.get("properties", {})
            if node.get("additionalProperties") is not False:
                return f"{path}: additionalProperties must be false"
            if sorted(node.get("required", [])) != sorted(properties):
                return f"{path}: every property must be required"
        for key, value in node.items():
            problem = _strict_problem(value, f"{path}/{key}")
            if problem:
                return problem
    elif isinstance(node, list):
        for index, value in enumerate(node):
            problem = _strict_problem(value, f"{path}/{index}")
            if problem:
                return problem
    return None


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        return target
    return node


def _array_property(schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Return the top-level array property (the entries) and the schema of one entry."""
    for key, value in schema.get("properties", {}).items():
        if value.get("type") == "array":
            return key, _resolve(schema, value["items"])
    raise ValueError("the response schema has no array of entries")


def _item_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return _array_property(schema)[1]


def _id_property(item: dict[str, Any]) -> str:
    return next(key for key, value in item["properties"].items() if value.get("type") == "integer" and "id" in key)


def _score_property(item: dict[str, Any]) -> str:
    return next(key for key, value in item["properties"].items() if value.get("type") == "integer" and "id" not in key)


def _build_output(schema: dict[str, Any], leads: list[dict[str, Any]], obeys_injection: bool) -> dict[str, Any]:
    key, item = _array_property(schema)
    id_key, score_key = _id_property(item), _score_property(item)
    entries = []
    for lead in leads:
        entry: dict[str, Any] = {}
        for name, spec in item["properties"].items():
            if name == id_key:
                entry[name] = lead["id"]
            elif name == score_key:
                entry[name] = 100 if obeys_injection else expected_score(lead["id"], lead.get("name"))
            elif spec.get("type") == "array":
                website = "listed with a website" if lead.get("website") else "no website"
                entry[name] = [f"type {lead.get('primary_type') or 'unknown'}", website]
            else:
                entry[name] = f"Hello {lead.get('name') or 'there'}, we help businesses like yours find more customers."
        entries.append(entry)
    return {key: entries}
