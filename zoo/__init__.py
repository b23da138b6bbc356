"""rnn-zoo: classic recurrent networks as exact Keras 3 layers and named, trained models.

    import zoo
    model = zoo.get("char_lstm", weights="default")
    zoo.list()          # registered names
    zoo.card("char_lstm")
"""

from zoo import architectures as _architectures  # noqa: F401  (registers the models)
from zoo import layers
from zoo._registry import card, example_input, get, register
from zoo._registry import list_models as list

__all__ = ["get", "list", "card", "register", "example_input", "layers"]
