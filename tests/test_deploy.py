"""serving/deploy/: every config parses with TF Serving's protos, every model it names loads, the YAML is sound.

No Docker engine runs here, so the image itself is not built; what the image
would read is checked instead: the text protos `tensorflow_model_server`
parses, the files the Dockerfile copies, the flags it passes, and the models
loaded by the embedded server from the paths they will have in the image.
"""

import pathlib
import re

import pytest
import requests
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import config_protos
from serving.__main__ import build_parser
from serving.repository import parse_model_config
from serving.rest import METRICS_PATH
from serving.server import ModelServer

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "serving" / "deploy"
IMAGE_MODELS = "/models/"  # where the Dockerfile copies saved_models/
IMAGE_CONFIG = "/models/config/"


def _model_config():
    return text_format.Parse((DEPLOY / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())


def _dockerfile_cmd():
    text = (DEPLOY / "Dockerfile").read_text()
    # Exec (JSON) form only: SIGTERM then reaches tensorflow_model_server, which drains before exit.
    match = re.search(r"^CMD (\[.*?\])$", text, re.MULTILINE | re.DOTALL)
    return yaml.safe_load(match.group(1).replace("\\\n", ""))  # a JSON array is YAML


def test_dockerfile_pins_a_tf_serving_release_and_copies_what_the_configs_name():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM tensorflow/serving:\d+\.\d+\.\d+$", text, re.MULTILINE), "pin an exact version"
    assert "COPY saved_models/ /models/" in text
    copied = re.search(r"^COPY (serving/deploy/\S+ .*) /models/config/$", text, re.MULTILINE).group(1).split()
    assert sorted(pathlib.Path(p).name for p in copied) == [
        "batching_parameters.txt",
        "models.config",
        "monitoring.config",
    ]
    assert all((ROOT / p).is_file() for p in copied)


def test_command_line_flags_point_at_the_copied_configs_and_our_server_takes_them():
    flags = dict(f.split("=", 1) if "=" in f else (f, "") for f in _dockerfile_cmd())
    assert flags["--model_config_file"] == IMAGE_CONFIG + "models.config"
    assert flags["--batching_parameters_file"] == IMAGE_CONFIG + "batching_parameters.txt"
    assert flags["--monitoring_config_file"] == IMAGE_CONFIG + "monitoring.config"
    assert "--enable_batching" in flags
    # The same command line starts the embedded server (unknown TF Serving flags are ignored), batching on.
    args, ignored = build_parser().parse_known_args(_dockerfile_cmd())
    assert args.model_config_file.endswith("models.config") and args.rest_api_timeout_in_ms == 30000
    assert args.enable_batching is True and args.batching_parameters_file.endswith("batching_parameters.txt")
    tf_serving_only = ("--monitoring_config_file",)
    assert set(ignored) == {f for f in _dockerfile_cmd() if f.split("=")[0] in tf_serving_only}


def test_batching_parameters_parse_with_tf_servings_message():
    text = (DEPLOY / "batching_parameters.txt").read_text()
    params = config_protos.parse_text(text, config_protos.BatchingParameters)
    sizes = list(params.allowed_batch_sizes)
    # TF Serving's rules: increasing, the last one equal to max_batch_size.
    assert sizes == sorted(sizes) and sizes[-1] == params.max_batch_size.value
    assert params.num_batch_threads.value >= 1 and params.batch_timeout_micros.value > 0


def test_monitoring_config_serves_prometheus_where_our_server_does():
    config = config_protos.parse_text((DEPLOY / "monitoring.config").read_text(), config_protos.MonitoringConfig)
    assert config.prometheus_config.enable and config.prometheus_config.path == METRICS_PATH


def test_config_parsers_reject_fields_tf_serving_does_not_have():
    with pytest.raises(text_format.ParseError, match="no field named \"max_batch_sise\""):
        config_protos.parse_text("max_batch_sise { value: 1 }", config_protos.BatchingParameters)


@pytest.mark.slow
def test_every_model_named_exists_and_loads_in_our_server(tmp_path):
    config = _model_config()
    assert config.model_config_list.config, "models.config names no model"
    for model in config.model_config_list.config:
        assert model.model_platform == "tensorflow" and model.base_path.startswith(IMAGE_MODELS)
        local = ROOT / "saved_models" / model.base_path[len(IMAGE_MODELS) :]
        assert any(p.name.isdigit() and (p / "saved_model.pb").is_file() for p in local.iterdir()), local
        model.base_path = str(local)  # the path it has inside the image, mapped back to the checkout
    with ModelServer(model_config=text_format.MessageToString(config), file_system_poll_wait_seconds=0) as server:
        for model in config.model_config_list.config:
            status = requests.get(f"{server.rest_target}/v1/models/{model.name}", timeout=30).json()
            assert {v["state"] for v in status["model_version_status"]} == {"AVAILABLE"}, status
    assert [m.name for m in parse_model_config(text_format.MessageToString(config))] == [
        m.name for m in config.model_config_list.config
    ]


def test_compose_health_check_needs_no_curl_and_mounts_the_configs():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    service = compose["services"]["tfserving"]
    assert service["build"] == {"context": "../..", "dockerfile": "serving/deploy/Dockerfile"}
    assert {"8500:8500", "8501:8501"} <= set(service["ports"])
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"] and test[3] == "</dev/tcp/127.0.0.1/8501"
    assert not any("curl" in part or "wget" in part for part in test)
    mounted = {volume.split(":")[0]: volume.split(":")[1] for volume in service["volumes"]}
    assert all((DEPLOY / source).is_file() for source in mounted)
    configs = ("models.config", "batching_parameters.txt", "monitoring.config")
    assert set(mounted.values()) == {IMAGE_CONFIG + p for p in configs}


def test_kubernetes_deployment_is_ready_on_model_status_and_has_a_service():
    documents = {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())}
    assert set(documents) == {"Deployment", "Service"}
    deployment, service = documents["Deployment"], documents["Service"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "rest": 8501}
    probe = container["readinessProbe"]["httpGet"]
    first_model = _model_config().model_config_list.config[0].name
    assert probe == {"path": f"/v1/models/{first_model}", "port": "rest"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels and service["spec"]["selector"] == labels
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {(8500, "grpc"), (8501, "rest")}
