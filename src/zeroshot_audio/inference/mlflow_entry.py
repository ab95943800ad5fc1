"""The code MLflow runs to build the tagger ("models from code": nothing pickled).

``log_tagger`` logs this file as the model's ``python_model``; loading the model executes it.
"""

from mlflow.models import set_model

from zeroshot_audio.inference.mlflow_model import TaggerModel

set_model(TaggerModel())
