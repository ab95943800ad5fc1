"""Project settings; see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from zeroshot_audio.hooks import (
    MissingInputsHook,
    MlflowArtifactHook,
    MlflowArtifactRootHook,
    MlflowReportHook,
    MlflowStaleRunHook,
)
from zeroshot_audio.model_registry_hook import ModelRegistryHook

HOOKS = (
    MissingInputsHook(),
    MlflowArtifactRootHook(),
    MlflowStaleRunHook(),
    MlflowReportHook(),
    MlflowArtifactHook(),
    ModelRegistryHook(),
)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
