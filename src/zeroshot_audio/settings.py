"""Project settings; see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from zeroshot_audio.hooks import MlflowArtifactHook, MlflowReportHook, ResultsTableHook

HOOKS = (MlflowReportHook(), MlflowArtifactHook(), ResultsTableHook())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
