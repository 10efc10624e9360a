"""FAKE teacher LLM for tests and benchmarks: an OpenAI-compatible `/v1/chat/completions` server on
127.0.0.1 with realistic latency. It stands in for an outside service (DeepSeek, a vLLM teacher);
everything else in the worker tests is real.

The request's `model` picks the behaviour:
  fake-good     a valid post-CoT rationale for the gold grade, citing the first rule
  fake-garbage  text that is not post-CoT at all (the CoT filter must reject it as `unparsable`)
  fake-mixed    garbage for one pair in four (by a hash of the prompt), good otherwise
  fake-flaky    429 (Retry-After: 0) then 503 on the first two calls for each prompt, then good
  fake-broken   HTTP 200 with a JSON body that has no `choices` (a malformed response)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from relmodel.format import format_completion

_GRADE = re.compile(r"Correct grade: (\d)")
_RULE = re.compile(r"^\[([^\]]+)\]", re.MULTILINE)


class FakeTeacher:
    """Start with `start()`; `url` is the OpenAI base URL (…/v1); `calls` counts responses by status."""

    def __init__(self, latency: tuple[float, float] = (0.2, 0.4), seed: int = 0) -> None:
        self.latency = latency
        self.calls: Counter[int] = Counter()
        self.prompts_seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeTeacher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) for one chat-completions request."""
        user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
        digest = hashlib.sha256(user.encode()).hexdigest()
        with self._lock:
            self.prompts_seen[digest] += 1
            seen = self.prompts_seen[digest]
            delay = self._rng.uniform(*self.latency)
        threading.Event().wait(delay)
        mode = str(body.get("model", "fake-good")).removeprefix("fake-")
        if mode == "flaky" and seen <= 2:
            return (429, {"error": "rate limited"}) if seen == 1 else (503, {"error": "overloaded"})
        if mode == "broken":
            return 200, {"id": "x", "object": "chat.completion", "note": "no choices here"}
        garbage = mode == "garbage" or (mode == "mixed" and int(digest, 16) % 4 == 0)
        return 200, _completion(body.get("model", ""), "lol idk, looks fine to me" if garbage else _rationale(user))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                status, payload = teacher.respond(json.loads(self.rfile.read(length) or b"{}"))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status == 429:
                    self.send_header("retry-after", "0")
                self.end_headers()
                self.wfile.write(data)
                with teacher._lock:
                    teacher.calls[status] += 1

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _rationale(user: str) -> str:
    match = _GRADE.search(user)
    grade = int(match.group(1)) if match else 1
    rules = _RULE.findall(user)
    cite = f" [{rules[0]}]" if rules else ""
    steps = ["the query asks for one product", "the item is described by its title",
             "the category was compared", f"attributes were checked{cite}", f"so it is this grade, grade {grade}."]
    return format_completion(grade, steps)


def _completion(model: str, content: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}
