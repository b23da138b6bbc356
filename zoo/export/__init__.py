"""SavedModel export: the zoo's models in TF Serving's layout, with metadata and warmup.

A neutral home that `training` (publishing) and `serving` (reading warmup
files) both import, so neither imports the other:

    from zoo.export import export_saved_model
    export_saved_model(model, "saved_models/char_lstm")   # writes the next version

A model is exported through the `Exportable` protocol only: its class brings
`serving_endpoints()` and `warmup_requests()`. Stale shipped versions are
re-exported from their `.keras` weights with `python -m zoo.export --stale`
(see `python -m zoo.export --help`). A server on one thread runs the
whole-kernel forms an export carries beside its signatures (`loaded_forms`).
"""

from zoo.export._reexport import reexport, stale_models, stale_reasons
from zoo.export._saved_model import METADATA_FILE, Exportable, export_saved_model, next_version, read_zoo_metadata
from zoo.export._warmup import MAX_WARMUP_RECORDS, WARMUP_FILE, write_warmup_requests
from zoo.export._whole_kernels import differing_output, loaded_forms

__all__ = [
    "Exportable",
    "export_saved_model",
    "next_version",
    "read_zoo_metadata",
    "METADATA_FILE",
    "WARMUP_FILE",
    "MAX_WARMUP_RECORDS",
    "write_warmup_requests",
    "loaded_forms",
    "differing_output",
    "reexport",
    "stale_models",
    "stale_reasons",
]
