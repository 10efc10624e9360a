"""Manifests for tests: the tiny example, shrunk further or changed by dotted paths."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from relmodel.spec import RelevanceModel, parse_manifest

EXAMPLES = Path(__file__).parent.parent / "examples"
TINY: dict[str, Any] = yaml.safe_load((EXAMPLES / "relevancemodel-tiny.yaml").read_text())
DELETE = object()

# Small enough that the whole pipeline trains in about a minute on 2 cores.
SMOKE = {
    "spec.datasets.synthetic": {"seed": 3, "trainSize": 96, "evalSize": 48},
    "spec.baseModel.tiny": {"vocabSize": 600, "hiddenSize": 32, "numLayers": 1, "numHeads": 2},
    # Enough SFT that the policy writes grades first, so GRPO finds prompts inside the band.
    "spec.stages.sft.training": {"maxSteps": 36, "batchSize": 8, "learningRate": 0.005, "maxLength": 320},
    "spec.stages.dpo": {"samples": 3, "maxNewTokens": 48,
                        "training": {"maxSteps": 3, "batchSize": 4, "learningRate": 0.0005, "maxLength": 320}},
    "spec.stages.grpo": {"rounds": 1, "groupSize": 4, "promptsPerRound": 12, "maxCompletionLength": 48,
                         "band": {"lower": 0.0, "upper": 1.0},
                         "training": {"maxSteps": 2, "batchSize": 4, "learningRate": 0.0002, "maxLength": 320}},
    "spec.evaluation.betaGrid": {"start": 0.3, "stop": 0.7, "step": 0.1},
}


def changed(base: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A copy of `base` (default TINY) with `a.b.c` = value changes (keys use '.' via dict unpacking)."""
    raw = copy.deepcopy(base if base is not None else TINY)
    for path, value in changes.items():
        node = raw
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return raw


def smoke_manifest(**changes: Any) -> RelevanceModel:
    return parse_manifest(changed(changed(**SMOKE), **changes))
