"""Project settings; see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from zeroshot_audio.hooks import MlflowArtifactHook, MlflowReportHook, ResultsTableHook
from zeroshot_audio.logfilters import quiet_known_noise

quiet_known_noise()  # before Kedro loads its plugins and config loader, which raise them

HOOKS = (MlflowReportHook(), MlflowArtifactHook(), ResultsTableHook())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
