"""How long select_nodes() takes on a large project: `python -m bench.selection [NODES]`.

Builds synthetic node records (models in layers with tags, folders and materializations, one to two tests per
model, seeds, sources), then times each expression as the DAG processor runs it: one call, graph built inside.
Prints the best CPU time of 20 calls per expression, in milliseconds (CPU time, so other processes on a
shared machine do not inflate it). Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from airflow_provider_idbt.dbt.selection import NodeGraph, select_nodes

SELECTORS = {
    "nightly_tables": {
        "name": "nightly_tables",
        "definition": {
            "union": [
                {"intersection": ["tag:nightly", "config.materialized:table"]},
                {"method": "path", "value": "models/folder_3", "children": True},
                {"exclude": ["tag:slow"]},
            ]
        },
    }
}
EXPRESSIONS: list[tuple[str, dict[str, Any]]] = [
    ("everything (no selection)", {}),
    ("tag:nightly", {"select": "tag:nightly"}),
    ("+model_1999 (all parents)", {"select": "+model_1999"}),
    ("model_10+ (all children)", {"select": "model_10+"}),
    ("@model_500", {"select": "@model_500"}),
    ("path + config, exclude tag", {"select": "path:models/folder_2 config.materialized:table", "exclude": "tag:slow"}),
    (
        "3 words, cautious",
        {"select": "tag:nightly,+model_2000 source:raw_3+ fqn:*folder_1*", "indirect_selection": "cautious"},
    ),
    ("YAML selector", {"selector": "nightly_tables", "selectors": SELECTORS}),
]


def synthetic_nodes(total: int, seed: int = 13) -> dict[str, dict[str, Any]]:
    rng = random.Random(seed)
    nodes: dict[str, dict[str, Any]] = {}

    def add(uid: str, kind: str, name: str, **fields: Any) -> None:
        nodes[uid] = {
            "unique_id": uid, "resource_type": kind, "name": name, "package_name": "big", "fqn": ["big", name],
            "tags": [], "config": {"enabled": True}, "depends_on": [], "version": None, "latest_version": None,
            "access": None, "group": None, "original_file_path": f"models/{name}.sql", **fields,
        }  # fmt: skip

    sources = [f"source.big.raw_{i}.table" for i in range(max(total // 50, 1))]
    for i, uid in enumerate(sources):
        add(uid, "source", "table", source_name=f"raw_{i}", original_file_path="models/sources.yml")
    models = max(total * 2 // 5, 1)
    for i in range(models):
        folder = f"folder_{i % 10}"
        parents = rng.sample(range(i), k=min(i, rng.randint(1, 3))) if i else []
        deps = [f"model.big.model_{p}" for p in parents] or [rng.choice(sources)]
        tags = [tag for tag, chance in (("nightly", 0.3), ("slow", 0.1), ("pii", 0.05)) if rng.random() < chance]
        materialized = rng.choice(("view", "table", "incremental", "ephemeral"))
        add(
            f"model.big.model_{i}", "model", f"model_{i}", depends_on=deps, tags=tags,
            fqn=["big", folder, f"model_{i}"], original_file_path=f"models/{folder}/model_{i}.sql",
            config={"enabled": True, "materialized": materialized, "tags": tags},
        )  # fmt: skip
    index = 0
    while len(nodes) < total:
        model = rng.randrange(models)
        deps = [f"model.big.model_{model}"]
        if rng.random() < 0.2:
            deps.append(f"model.big.model_{rng.randrange(models)}")
        add(f"test.big.test_{index}", "test", f"test_{index}", depends_on=deps, test_name="not_null")
        index += 1
    return nodes


def _best_ms(call: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        call()
        times.append((time.process_time() - start) * 1000)
    return min(times)


def main(argv: list[str]) -> int:
    total = int(argv[0]) if argv else 5000
    nodes = synthetic_nodes(total)
    print(f"{len(nodes)} nodes, {sum(len(n['depends_on']) for n in nodes.values())} edges")
    print(f"  NodeGraph.build: {_best_ms(lambda: NodeGraph.build(nodes), 20):.1f} ms")
    graph = NodeGraph.build(nodes)
    for label, kwargs in EXPRESSIONS:
        count = len(select_nodes(nodes, **kwargs))
        alone = _best_ms(lambda kw=kwargs: select_nodes(nodes, **kw), 20)
        shared = _best_ms(lambda kw=kwargs: select_nodes(nodes, graph=graph, **kw), 20)
        print(f"  {label}: {alone:.1f} ms, {shared:.1f} ms with a shared graph ({count} selected)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
