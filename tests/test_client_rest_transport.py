"""The REST client's transport: what it reads from the environment, and how each network failure is named.

A recording HTTP server stands in for TF Serving (or for a proxy in front of it): it keeps each request's
request line, headers and client address, and answers an empty model status.
"""

import base64
import contextlib
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
import requests

from serving.client import Client, _tls_options
from serving.errors import Code, ServingError

PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                   "no_proxy")


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving answers

    def do_GET(self):
        self.server.seen.append((self.requestline, self.headers, self.client_address))  # header names: any case
        body = json.dumps({"model_version_status": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _recording(tls_context=None):
    """A recording server on 127.0.0.1, serving in a thread until the block ends (over TLS with `tls_context`)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def recorder():
    with _recording() as server:
        yield server


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def _address(server):
    host, port = server.server_address[:2]
    return f"{host}:{port}"


def _request_lines(server):
    return [line for line, _, _ in server.seen]


def test_calls_reuse_one_connection_and_send_the_path(recorder, clean_environment):
    with Client(_address(recorder), retries=0) as client:
        assert client.status("m") == [] and client.status("m") == []
    assert _request_lines(recorder) == ["GET /v1/models/m HTTP/1.1"] * 2
    assert recorder.seen[0][2] == recorder.seen[1][2]  # the same client port: one connection, kept alive


def test_a_path_prefix_in_the_target_is_kept(recorder, clean_environment):
    with Client(f"http://{_address(recorder)}/serving/", retries=0) as client:
        client.status("m")
    assert _request_lines(recorder) == ["GET /serving/v1/models/m HTTP/1.1"]


def test_the_environments_proxy_is_asked_for_the_whole_url(recorder, clean_environment, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://{_address(recorder)}")
    with Client("tf-serving.example:8501", retries=0) as client:
        client.status("m")
    assert _request_lines(recorder) == ["GET http://tf-serving.example:8501/v1/models/m HTTP/1.1"]


def test_hosts_in_no_proxy_are_called_directly(recorder, clean_environment, monkeypatch):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{unused.getsockname()[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with Client(_address(recorder), retries=0) as client:
        client.status("m")
    assert _request_lines(recorder) == ["GET /v1/models/m HTTP/1.1"]


def test_netrc_credentials_are_sent_as_basic_auth(recorder, clean_environment, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with Client(_address(recorder), retries=0) as client:
        client.status("m")
    assert recorder.seen[0][1].get("Authorization") == "Basic " + base64.b64encode(b"reader:s3cret").decode()


def test_a_server_that_never_answers_is_deadline_exceeded(clean_environment):
    with socket.socket() as silent:  # listens, so the connection is made, and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with Client(f"127.0.0.1:{port}", timeout=0.3, retries=0) as client, pytest.raises(ServingError) as raised:
            client.status("m")
    assert raised.value.code == Code.DEADLINE_EXCEEDED
    assert "timed out" in raised.value.message


def test_a_server_that_hangs_up_is_unavailable(clean_environment):
    with socket.socket() as rude:
        rude.bind(("127.0.0.1", 0))
        rude.listen()
        port = rude.getsockname()[1]

        def hang_up():
            connection, _ = rude.accept()
            connection.recv(65536)
            connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        with Client(f"127.0.0.1:{port}", timeout=5, retries=0) as client, pytest.raises(ServingError) as raised:
            client.status("m")
        thread.join(5)
    assert raised.value.code == Code.UNAVAILABLE
    assert f"127.0.0.1:{port}" in raised.value.message


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"verify": True, "cert": None}, {"cert_reqs": "CERT_REQUIRED", "ca_certs": requests.certs.where()}),
        ({"verify": False, "cert": None}, {"cert_reqs": "CERT_NONE"}),
        ({"verify": "/etc/ssl/certs/bundle.pem", "cert": "/keys/client.pem"},
         {"cert_reqs": "CERT_REQUIRED", "ca_certs": "/etc/ssl/certs/bundle.pem", "cert_file": "/keys/client.pem",
          "key_file": None}),
        ({"verify": True, "cert": ("/keys/client.crt", "/keys/client.key")},
         {"cert_reqs": "CERT_REQUIRED", "ca_certs": requests.certs.where(), "cert_file": "/keys/client.crt",
          "key_file": "/keys/client.key"}),
    ],
)
def test_https_settings_map_to_urllib3s_tls_options(settings, expected):
    assert _tls_options(settings) == expected


def test_a_ca_directory_is_passed_as_one(tmp_path):
    assert _tls_options({"verify": str(tmp_path), "cert": None})["ca_cert_dir"] == str(tmp_path)


@pytest.fixture
def tls_recorder(tmp_path):
    """The recording server over HTTPS, with a self-signed certificate for 127.0.0.1 (its file: `.certificate`)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    with _recording(context) as server:
        server.certificate = certificate
        yield server


def test_https_verifies_against_the_environments_ca_bundle(tls_recorder, clean_environment, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_recorder.certificate))
    with Client(f"https://{_address(tls_recorder)}", retries=0) as client:
        assert client.status("m") == []
    assert _request_lines(tls_recorder) == ["GET /v1/models/m HTTP/1.1"]


def test_https_refuses_a_certificate_no_bundle_vouches_for(tls_recorder, clean_environment, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with Client(f"https://{_address(tls_recorder)}", retries=0) as client, pytest.raises(ServingError) as raised:
        client.status("m")
    assert raised.value.code == Code.UNAVAILABLE and "CERTIFICATE_VERIFY_FAILED" in raised.value.message
    assert tls_recorder.seen == []
