"""Project settings; see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from zeroshot_audio.hooks import (
    MissingInputsHook,
    MlflowArtifactHook,
    MlflowArtifactRootHook,
    MlflowReportHook,
    MlflowStaleRunHook,
    ResultsTableHook,
)
from zeroshot_audio.logfilters import quiet_known_noise
from zeroshot_audio.model_registry_hook import ModelRegistryHook

quiet_known_noise()  # before Kedro loads its plugins and config loader, which raise them

HOOKS = (
    MissingInputsHook(),
    MlflowArtifactRootHook(),
    MlflowStaleRunHook(),
    MlflowReportHook(),
    MlflowArtifactHook(),
    ModelRegistryHook(),
    ResultsTableHook(),
)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
