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

# Parameters merge softly across environments: an env file (conf/audioset, conf/local) or a nested
# runtime override (`--params train.fit.epochs=2`) replaces only the keys it names, never the whole
# top-level group. Kedro's default ("destructive") lets `train: {fit: {epochs: 2}}` in one env drop
# every sibling of `fit` from base. Catalog entries keep the default: an env's entry replaces
# base's whole entry, so a dataset is always defined in one place per env.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}
