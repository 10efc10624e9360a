"""The `serve` step as the local executor runs it: write the CumPT config for the served model.

On Kubernetes the operator renders the same config into a ConfigMap beside the engine and
gateway Deployments; locally, `relmodel serve-engine` and `relmodel gateway` read this file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from relmodel import storage
from relmodel.evaluation import METRICS_FILE
from relmodel.serving.config import CONFIG_FILE, CumPTConfig
from relmodel.steps import step_main


def build_config(params: dict[str, Any]) -> CumPTConfig:
    from relmodel.modeling import grade_token_ids, load_tokenizer

    serving = params["serving"]
    metrics = json.loads(storage.read_text(storage.join(params["eval"], METRICS_FILE)))
    beta = serving.get("beta")
    tokenizer = load_tokenizer(params["model"])
    ids = grade_token_ids(tokenizer, chat_template=params.get("chat_template", False))
    return CumPTConfig(
        model=params["model"],
        beta=beta if beta is not None else metrics["beta"],
        grade_token_ids=(ids[0], ids[1], ids[2], ids[3]),
        chat_template=params.get("chat_template", False),
        max_items_per_request=serving["max_items_per_request"],
        macro_f1=metrics["macro_f1"],
        source=params["eval"],
    )


def run(params: dict[str, Any]) -> dict[str, Any]:
    config = build_config(params)
    uri = storage.join(params["output"], CONFIG_FILE)
    storage.write_text(uri, config.model_dump_json(indent=2))
    return {"config": uri, "beta": config.beta, "model": config.model}


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
