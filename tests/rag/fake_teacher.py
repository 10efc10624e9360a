"""FakeTeacher: a FAKE OpenAI-compatible chat-completions server for tests (never used in product code).

It is a real HTTP server on 127.0.0.1 that answers POST /v1/chat/completions the way a teacher LLM
would, including its failure modes: it reads the gold grade and the rule ids from the prompt and
writes a post-CoT answer, sometimes wrapped in <think>...</think>; by a stable hash of the prompt
some answers are garbage, name the wrong grade or cite no rule; and optionally the first attempt
of every prompt is refused with 429 (Retry-After: 0) so that client retries are exercised.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from relmodel.format import format_completion

Mode = str  # "good" | "think" | "garbage" | "wrong_grade" | "no_cite" | "error500"


def mixed_behaviour(prompt: str) -> Mode:
    """About 60% good, 10% each of think-wrapped good, garbage, wrong grade, no citation."""
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 10
    return {0: "garbage", 1: "wrong_grade", 2: "no_cite", 3: "think"}.get(bucket, "good")


class FakeTeacher:
    """Context manager running the fake server; `url` is the base to give OpenAITeacher."""

    def __init__(self, behaviour: Callable[[str], Mode] = mixed_behaviour, rate_limit_first: bool = False) -> None:
        self.behaviour = behaviour
        self.rate_limit_first = rate_limit_first
        self.requests: Counter[str] = Counter()  # prompt -> attempts
        self.statuses: Counter[int] = Counter()
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeTeacher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | str]:
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.requests[prompt] += 1
            attempt = self.requests[prompt]
        if self.rate_limit_first and attempt == 1:
            return 429, {"error": {"message": "rate limited", "type": "rate_limit"}}
        mode = self.behaviour(prompt)
        if mode == "error500":
            return 500, "upstream exploded"
        grade = int(re.search(r"Correct grade: (\d)", prompt).group(1))  # type: ignore[union-attr]
        rule_ids = re.findall(r"^\[([^\]]+)\]", prompt, re.MULTILINE)
        cite = f" [{rule_ids[0]}]" if rule_ids and mode != "no_cite" else ""
        said = grade % 4 + 1 if mode == "wrong_grade" else grade
        steps = ["the shopper's intent", "the item as listed", "category compared", "attributes compared",
                 f"per the rules{cite} grade {said}."]
        content = format_completion(said, steps)
        if mode == "garbage":
            content = "Sure! The item looks fine to me, I would say it is quite relevant."
        elif mode == "think":
            content = f"<think>The gold grade is {grade}; let me explain.</think>\n{content}"
        return 200, {"id": "fake", "object": "chat.completion", "model": body.get("model"),
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content}}]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.headers.append(dict(self.headers))
                status, payload = fake.answer(body)
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any] | str) -> None:
                with fake._lock:
                    fake.statuses[status] += 1
                data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if isinstance(payload, dict) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        return Handler
