"""Property-based fuzz of the whole REST path: routing, body parsing, decoding, running, encoding.

One promise, whatever the method, path and body: an answer within seconds,
never a 500, and under /v1/ always `application/json` with either a result or
a non-empty `{"error": ...}`. The codec-level fuzz (faster, more examples) is
in `test_server_json_codec.py`.
"""

import json
import string

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from serving import json_codec
from serving.errors import Code, ServingError
from tests.test_server_json_codec import bodies as predict_bodies
from tests.test_server_json_codec import json_values

ANSWER_SECONDS = 20  # a hang shows as a requests timeout, which fails the example

example_docs = st.fixed_dictionaries(
    {},
    optional={
        "examples": st.one_of(
            st.lists(st.dictionaries(st.sampled_from(["x", "y"]), json_values, max_size=2), max_size=3), json_values
        ),
        "context": json_values,
        "signature_name": st.sampled_from(["", "classify", "regress", "multi", "nope"]),
    },
)
bodies = st.one_of(predict_bodies, example_docs.map(lambda doc: json.dumps(doc).encode()))

versions = st.sampled_from(
    ["", "/versions/1", "/versions/2", "/versions/99999999999999999999", "/labels/stable", "/labels/nope",
     "/labels/%ZZ"]
)
verbs = st.sampled_from([":predict", ":classify", ":regress", ":PREDICT", ":", "/metadata", ""])
models = st.sampled_from(["tiny", "newest", "broken", "nope", "t%20iny", "%FF"])
url_text = st.text(alphabet=string.ascii_letters + string.digits + "-._~:/%", max_size=24)
paths = st.one_of(
    st.builds(lambda m, v, verb: f"/v1/models/{m}{v}{verb}", models, versions, verbs),
    url_text.map(lambda tail: "/v1/" + tail),
    url_text.map(lambda tail: "/" + tail),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=methods, path=paths, body=bodies)
@example(method="GET", path="/v1/..", body=b"{}")  # sent as "/": the server's plain 404, not a /v1/ answer
def test_fuzz_http_path_never_answers_500_or_hangs(rest_url, method, path, body):
    reply = requests.request(method, rest_url + path, data=body, timeout=ANSWER_SECONDS)
    assert reply.status_code < 500 or reply.status_code == 501, (reply.status_code, reply.text)
    # Judged by the path the server received: the client removes dot segments ("/v1/.." is sent as "/").
    if not reply.request.path_url.lower().startswith("/v1/"):
        return
    assert reply.headers["content-type"] == "application/json", reply.headers
    doc = json.loads(reply.content)
    if reply.status_code == 200:
        assert set(doc) <= {"predictions", "outputs", "results", "model_version_status", "model_spec", "metadata"}
    else:
        assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"]


@settings(max_examples=300, deadline=None)
@given(doc=example_docs)
def test_fuzz_examples_decoding_only_raises_invalid_argument(doc):
    try:
        serialized = json_codec.decode_examples(doc)
    except ServingError as error:
        assert error.code == Code.INVALID_ARGUMENT, error
    else:
        assert len(serialized) == len(doc["examples"]) and all(isinstance(s, bytes) for s in serialized)
