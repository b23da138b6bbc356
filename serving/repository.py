"""The model repository: which versions exist, which are loaded, which answers.

A model is a name and a base path; its versions are the integer-named children
holding a `saved_model.pb` (`00000123` is version 123; anything else, such as
an exporter's hidden staging folder, is ignored). A version policy picks the
versions to serve (`latest {num_versions: N}`, default 1; `all {}`;
`specific {versions: ...}`), and `version_labels` name versions.

`poll()` rescans the base paths the way TF Serving's file-system source and
availability-preserving policy do: new versions are loaded first, and only then
are versions the policy dropped unloaded, so there is always a version to
answer; requests in flight hold their `Servable` and finish on it. A version
that fails to load never takes the server down; the versions already serving
stay.

A failed load is retried, as TF Serving's loader harness does
(`--max_num_load_retries`, default 5; `--load_retry_interval_micros`, default
one minute): an exporter's copy caught half-way (`saved_model.pb` truncated,
variables not yet written) loads once its files are complete. Between
attempts the version stays LOADING; the retry runs on the first poll after the
interval, so polling threads are never put to sleep. Once the retries are
spent, or the version is no longer aspired, it is END with the last error, and
stays so, as in TF Serving.
"""

import dataclasses
import logging
import os
import re
import threading
import time

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import Code, ServingError
from serving.servable import Servable
from zoo._checks import check_non_negative_int

__all__ = [
    "ModelConfig",
    "VersionPolicy",
    "VersionStatus",
    "ModelRepository",
    "parse_model_config",
    "read_model_config_file",
    "scan_versions",
]

log = logging.getLogger(__name__)

_VERSION_DIR = re.compile(r"[0-9]+")
_INT64_MAX = 2**63 - 1

DEFAULT_MAX_NUM_LOAD_RETRIES = 5  # TF Serving's --max_num_load_retries
DEFAULT_LOAD_RETRY_INTERVAL_MICROS = 60 * 1000 * 1000  # TF Serving's --load_retry_interval_micros: one minute

# ModelVersionStatus.State names, in TF Serving's spelling.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which of the versions on disk to serve.

    Attributes:
        kind: "latest", "all" or "specific".
        num_versions: for "latest": how many of the highest versions.
        versions: for "specific": the version numbers.
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple = ()

    def __post_init__(self):
        if self.kind not in ("latest", "all", "specific"):
            raise ValueError(f"Version policy must be 'latest', 'all' or 'specific'. Received: kind={self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"latest {{ num_versions }} must be >= 1. Received: num_versions={self.num_versions}")

    def select(self, on_disk):
        """The versions to serve among `on_disk` (an iterable of ints)."""
        on_disk = sorted(set(on_disk))
        if self.kind == "all":
            return set(on_disk)
        if self.kind == "specific":
            return set(on_disk) & set(self.versions)
        return set(on_disk[-self.num_versions :])


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One model of the server: a name, a base path, a policy and labels."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: tuple = ()  # ((label, version), ...)

    def __post_init__(self):
        if not self.name:
            raise ValueError(f"A model needs a non-empty name. Received: name={self.name!r}")
        if not self.base_path:
            raise ValueError(f"Model {self.name!r} needs a base_path. Received: base_path={self.base_path!r}")


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """What `GetModelStatus` reports for one version."""

    version: int
    state: str
    error_code: Code = Code.OK
    error_message: str = ""


def _policy_from_proto(proto):
    choice = proto.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        return VersionPolicy("specific", versions=tuple(proto.specific.versions))
    if choice == "latest" and proto.latest.num_versions:
        return VersionPolicy("latest", num_versions=proto.latest.num_versions)
    return VersionPolicy()


def parse_model_config(config):
    """`ModelConfig`s from a `ModelServerConfig` proto or its text form.

    Raises:
        ServingError: INVALID_ARGUMENT for text that does not parse, a
            `custom_model_config`, a platform other than tensorflow, or a
            model named twice.
    """
    if isinstance(config, str):
        try:
            config = text_format.Parse(config, model_server_config_pb2.ModelServerConfig())
        except text_format.ParseError as error:
            raise ServingError(Code.INVALID_ARGUMENT, f"Invalid model config text proto: {error}") from error
    if config.WhichOneof("config") == "custom_model_config":
        raise ServingError(Code.UNIMPLEMENTED, "custom_model_config is not supported; use model_config_list.")
    models = []
    for entry in config.model_config_list.config:
        if entry.model_platform not in ("", "tensorflow"):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Model {entry.name!r}: only model_platform 'tensorflow' is served. "
                f"Received: model_platform={entry.model_platform!r}",
            )
        try:
            models.append(
                ModelConfig(
                    name=entry.name,
                    base_path=entry.base_path,
                    policy=_policy_from_proto(entry.model_version_policy),
                    labels=tuple(sorted(entry.version_labels.items())),
                )
            )
        except ValueError as error:
            raise ServingError(Code.INVALID_ARGUMENT, str(error)) from error
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ServingError(Code.INVALID_ARGUMENT, f"Model names must be unique. Received twice: {duplicates}")
    return models


def read_model_config_file(path):
    """`ModelConfig`s from a `--model_config_file` (text `ModelServerConfig`)."""
    with open(path, encoding="utf-8") as f:
        return parse_model_config(f.read())


def scan_versions(base_path):
    """Version number -> folder, for the servable versions under `base_path`.

    Only integer-named folders holding a SavedModel count; a missing base path
    has no versions (TF Serving keeps polling it).
    """
    try:
        entries = sorted(os.scandir(base_path), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}
    versions = {}
    for entry in entries:
        if not _VERSION_DIR.fullmatch(entry.name) or not entry.is_dir():
            continue
        version = int(entry.name)
        has_model = any(os.path.isfile(os.path.join(entry.path, f)) for f in ("saved_model.pb", "saved_model.pbtxt"))
        if has_model and version <= _INT64_MAX:
            versions.setdefault(version, entry.path)  # "1" and "001": the first by name wins
    return versions


class _Model:
    """Mutable per-model state, guarded by the repository's lock."""

    def __init__(self, config):
        self.config = config
        self.active = True  # False once a config reload dropped the model (its states stay visible)
        self.servables = {}  # version -> Servable (AVAILABLE)
        self.states = {}  # version -> VersionStatus (every version ever seen)
        self.retries = {}  # version -> _Retry, while a failed load waits for its next attempt


@dataclasses.dataclass(frozen=True)
class _Retry:
    """A failed load waiting for its next attempt."""

    failures: int  # attempts so far, all failed
    due: float  # clock time of the next attempt
    error: ServingError  # the last attempt's error


class ModelRepository:
    """Loads, tracks and resolves model versions.

    Args:
        models: `ModelConfig`s to serve.
        loader: `(name, version, path) -> Servable`; tests may inject one.
        max_num_load_retries: how many times a failed load is tried again
            (TF Serving's `--max_num_load_retries`).
        load_retry_interval_micros: the wait before each retry, in
            microseconds (TF Serving's `--load_retry_interval_micros`).
        clock: seconds, monotonic; tests may inject one.
    """

    def __init__(
        self,
        models,
        loader=Servable.load,
        *,
        max_num_load_retries=DEFAULT_MAX_NUM_LOAD_RETRIES,
        load_retry_interval_micros=DEFAULT_LOAD_RETRY_INTERVAL_MICROS,
        clock=time.monotonic,
    ):
        self._loader = loader
        self.max_num_load_retries = check_non_negative_int("max_num_load_retries", max_num_load_retries)
        self.load_retry_interval_s = (
            check_non_negative_int("load_retry_interval_micros", load_retry_interval_micros) / 1e6
        )
        self._clock = clock
        self._lock = threading.RLock()  # guards _models and their dicts
        self._poll_lock = threading.Lock()  # one rescan at a time
        self._models = {m.name: _Model(m) for m in models}

    # ---------------------------------------------------------------- loading

    def poll(self):
        """Rescans every base path once: load new aspired versions, then unload the rest."""
        with self._poll_lock:
            with self._lock:
                models = [m for m in self._models.values() if m.active]
            for model in models:
                self._poll_model(model)

    def _poll_model(self, model):
        on_disk = scan_versions(model.config.base_path)
        aspired = model.config.policy.select(on_disk)
        if not on_disk:
            log.warning("No versions of model %s found under base path %s", model.config.name, model.config.base_path)
        self._cancel_retries(model, aspired)
        for version in sorted(aspired, reverse=True):  # newest first: it answers "latest" soonest
            with self._lock:
                state, retry = model.states.get(version), model.retries.get(version)
                if version in model.servables or (state is not None and state.error_code != Code.OK):
                    continue  # already serving, or out of retries: TF Serving does not try again either
                if retry is not None and self._clock() < retry.due:
                    continue  # LOADING, waiting for its next attempt
                model.states[version] = VersionStatus(version, LOADING)
            self._load(model, version, on_disk[version])
        self._unload_unaspired(model, aspired)

    def _load(self, model, version, path):
        name = model.config.name
        try:
            servable = self._loader(name, version, path)
        except Exception as error:  # any failure is reported in status, never raised
            if not isinstance(error, ServingError):
                error = ServingError(Code.UNKNOWN, f"{type(error).__name__}: {error}")
            self._failed(model, version, error)
            return
        with self._lock:
            model.retries.pop(version, None)
            model.servables[version] = servable
            model.states[version] = VersionStatus(version, AVAILABLE)
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _failed(self, model, version, error):
        """Schedules the next attempt of a failed load, or, with the retries spent, reports it END."""
        name = model.config.name
        with self._lock:
            previous = model.retries.pop(version, None)
            failures = 1 + (previous.failures if previous else 0)
            if failures > self.max_num_load_retries:
                log.error("Loading servable: {name: %s version: %d} failed: %s", name, version, error.message)
                model.states[version] = VersionStatus(version, END, error.code, error.message)
                return
            model.retries[version] = _Retry(failures, self._clock() + self.load_retry_interval_s, error)
        log.warning(
            "Loading servable: {name: %s version: %d} failed: %s. Retrying in %g s (retry %d of %d)",
            name, version, error.message, self.load_retry_interval_s, failures, self.max_num_load_retries,
        )

    def _cancel_retries(self, model, aspired):
        """A version waiting for a retry that is no longer aspired (its folder went) ends with its last error."""
        with self._lock:
            for version in [v for v in model.retries if v not in aspired]:
                error = model.retries.pop(version).error
                model.states[version] = VersionStatus(version, END, error.code, error.message)

    def _unload_unaspired(self, model, aspired):
        with self._lock:
            unaspired = sorted(v for v in model.servables if v not in aspired)
            if not unaspired:
                return
            # Availability-preserving: drop un-aspired versions only once an
            # aspired one serves (or none is aspired); else keep the newest.
            if aspired and not any(v in model.servables for v in aspired):
                unaspired = unaspired[:-1]
            for version in unaspired:
                del model.servables[version]
                model.states[version] = VersionStatus(version, END)
                log.info("Unloaded servable version {name: %s version: %d}", model.config.name, version)

    def reload_config(self, models):
        """Replaces the served models (TF Serving's HandleReloadConfigRequest).

        Models no longer listed are unloaded; new ones are loaded; labels are
        checked against the versions available afterwards.

        Raises:
            ServingError: FAILED_PRECONDITION when a label names a version that
                is not available.
        """
        with self._poll_lock, self._lock:
            listed = {config.name for config in models}
            for model in self._models.values():
                if model.active and model.config.name not in listed:
                    model.active = False  # like TF Serving, status still shows its versions, as END
                    for version in model.servables:
                        model.states[version] = VersionStatus(version, END)
                    model.servables.clear()
            for config in models:
                model = self._models.setdefault(config.name, _Model(config))
                model.config, model.active = config, True
        self.poll()
        self.check_labels()

    def check_labels(self):
        """Raises FAILED_PRECONDITION if a label points at a version that is not AVAILABLE."""
        with self._lock:
            for model in self._models.values():
                for _label, version in model.config.labels if model.active else ():
                    if version not in model.servables:
                        raise ServingError(
                            Code.FAILED_PRECONDITION,
                            f"Request to assign label to version {version} of model {model.config.name}, "
                            "which is not currently available for inference",
                        )

    def loaded(self):
        """(name, version) of every version loaded now."""
        with self._lock:
            return frozenset((m.config.name, v) for m in self._models.values() if m.active for v in m.servables)

    def models(self):
        """The `ModelConfig`s served now, by name (a config reload changes them)."""
        with self._lock:
            return sorted((m.config for m in self._models.values() if m.active), key=lambda config: config.name)

    # ------------------------------------------------------------- resolution

    def resolve(self, name, version=None, label=None):
        """The `Servable` answering (name, version | label | latest).

        Raises:
            ServingError: INVALID_ARGUMENT for an empty name or an unknown
                label, NOT_FOUND `Servable not found for request: ...` when
                no such model or version is loaded.
        """
        if not name:
            raise ServingError(Code.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        with self._lock:
            model = self._models.get(name)
            model = model if model is not None and model.active else None
            if label is not None:
                version = dict(model.config.labels).get(label) if model else None
                if version is None:
                    raise ServingError(Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
            servables = model.servables if model else {}
            if version is None:
                if not servables:
                    raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Latest({name})")
                return servables[max(servables)]
            servable = servables.get(int(version))
            if servable is None:
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})")
            return servable

    def status(self, name, version=None):
        """`VersionStatus`es of `name`, newest first (only `version` if given).

        Raises:
            ServingError: NOT_FOUND `Could not find any versions of model <m>` /
                `Could not find version <v> of model <m>`.
        """
        with self._lock:
            model = self._models.get(name)
            states = dict(model.states) if model else {}
        if version is not None:
            if int(version) not in states:
                raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
            return [states[int(version)]]
        if not states:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        return [states[v] for v in sorted(states, reverse=True)]
