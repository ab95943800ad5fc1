"""Project pipelines: one per stage folder under ``pipelines/``, found by name."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """``kedro run --pipeline=<stage>`` runs one stage; ``__default__`` chains them all.

    Each stage's nodes live in a namespace named after the stage, so kedro-viz collapses the graph
    into the stages (and ``kedro run --namespaces=<stage>`` works), while
    ``prefix_datasets_with_namespace=False`` keeps every dataset and parameter name unchanged: the
    catalog names are the contracts between stages.
    """
    stages = {
        name: Pipeline(found, namespace=name, prefix_datasets_with_namespace=False)
        for name, found in find_pipelines(raise_errors=True).items()
        if name != "__default__"
    }
    return {**stages, "__default__": sum(stages.values(), Pipeline([]))}
