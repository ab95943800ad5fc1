"""Project settings; see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from zeroshot_audio.hooks import (
    MissingInputsHook,
    MlflowArtifactHook,
    MlflowArtifactRootHook,
    MlflowReportHook,
    MlflowStaleRunHook,
)

HOOKS = (
    MissingInputsHook(),
    MlflowArtifactRootHook(),
    MlflowStaleRunHook(),
    MlflowReportHook(),
    MlflowArtifactHook(),
)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
