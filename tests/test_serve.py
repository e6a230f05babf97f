"""`nlptransfer serve` on 127.0.0.1, started and stopped by the tests: every endpoint, every limit and error, auth,
dynamic batching that gives each request exactly its own results, graceful shutdown, the prediction log, worker
processes, and the deployment files."""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from .conftest import quick_overrides, sentiment_rows, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "s3cret-key-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(folder: Path, *args: str, env: dict | None = None):
    """`nlptransfer serve folder` on a free port until the block ends; yields (base url, process)."""
    port = free_port()
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                       PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    process = subprocess.Popen([sys.executable, "-m", "nlptransfer", "serve", str(folder), "--port", str(port), *args],
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {process.stdout.read()[-3000:]}")
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise AssertionError("the server did not become ready")
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def run(tiny_models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve")
    data = write_csv(out / "reviews.csv", sentiment_rows(120))
    import nlptransfer

    return nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=quick_overrides(
        tiny_models["bert"], out, **{"training.epochs": 2})).path


@pytest.fixture(scope="module")
def live(run):
    with server(run, "--max-texts", "32", "--max-wait-ms", "10") as (url, process):
        yield url


@pytest.fixture(scope="module")
def classifier(run):
    from nlptransfer.inference import TextClassifier

    return TextClassifier.load(run)


def _predict(url: str, body, **kw) -> httpx.Response:
    return httpx.post(url + "/v1/predict", json=body, timeout=30, **kw)


def test_every_endpoint_answers(live, run, classifier):
    assert httpx.get(live + "/health").json() == {"status": "ok"}
    assert httpx.get(live + "/ready").json() == {"status": "ready"}
    meta = httpx.get(live + "/metadata").json()
    metrics = json.loads((run / "metrics.json").read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["strategy"] == "full"
    assert meta["test_metrics"] == metrics["test"] and meta["nlptransfer_version"]
    assert meta["base_model"]["name"] == "bert"  # a local base model is named, not located
    schema = httpx.get(live + "/openapi.json").json()
    assert {"/v1/predict", "/health", "/ready", "/metadata", "/metrics", "/v1/drift"} <= set(schema["paths"])
    assert httpx.get(live + "/docs").status_code == 200
    body = _predict(live, {"texts": ["good movie", "a bad film", "okay"]}).json()
    expected = classifier.predict_proba(["good movie", "a bad film", "okay"])
    got = np.array([[p["probabilities"]["negative"], p["probabilities"]["positive"]] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [p["label"] for p in body["predictions"]] == [("negative", "positive")[i] for i in expected.argmax(1)]
    one = _predict(live, {"texts": "good movie"}).json()["predictions"]
    assert len(one) == 1 and one[0]["truncated"] is False
    text = httpx.get(live + "/metrics").text
    for name in ("nlptransfer_requests_total", "nlptransfer_request_duration_seconds_bucket",
                 "nlptransfer_queue_wait_seconds_bucket", "nlptransfer_queue_size", "nlptransfer_batch_size_bucket",
                 "nlptransfer_batch_tokens_bucket", "nlptransfer_predictions_total", "nlptransfer_prediction_confidence_bucket",
                 "nlptransfer_drift_label_psi", "nlptransfer_drift_alarm"):
        assert name in text, name
    assert 'nlptransfer_requests_total{endpoint="/v1/predict",status="200"}' in text
    drift = httpx.get(live + "/v1/drift").json()
    assert drift["thresholds"] == {"psi": 0.25, "p_value": 0.01, "mmd": 0.05} and drift["alarm"] is False
    assert drift["reference"]["source"] == "validation"


@pytest.mark.parametrize("body, status, message", [
    ({"texts": []}, 422, "at least 1 item"),
    ({"texts": ["x"] * 33}, 422, "at most 32 items"),
    ({"texts": ["x" * 100_001]}, 422, "at most 100000 characters"),
    ({"texts": [1, 2]}, 422, "valid string"),
    ({"text": "x"}, 422, "texts"),
    ({"texts": "x", "other": 1}, 422, "Extra inputs are not permitted"),
    ([1, 2], 422, "valid dictionary or object"),
])
def test_bad_requests_are_4xx_with_a_json_error(live, body, status, message):
    response = _predict(live, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["status"] == status and message in error["message"]


def test_bodies_that_are_not_json_utf8_or_are_too_large(live):
    for content, status in ((b'{"texts": "\xff\xfe"}', 400), (b"not json", 422), (b'{"texts": ', 422)):
        response = httpx.post(live + "/v1/predict", content=content, headers={"content-type": "application/json"})
        assert response.status_code in (400, 422) and response.json()["error"]["status"] == response.status_code
        assert response.status_code == status or content != b'{"texts": "\xff\xfe"}'
    large = httpx.post(live + "/v1/predict", content=b"x" * 4_000_001, headers={"content-type": "application/json"})
    assert large.status_code == 413 and "larger than 4000000 bytes" in large.json()["error"]["message"]
    missing = httpx.get(live + "/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    assert httpx.get(live + "/health").status_code == 200  # none of it hurt the process


def test_a_text_longer_than_the_token_limit_is_cut_and_says_so(live):
    body = _predict(live, {"texts": ["good " * 200, "good"]}).json()["predictions"]
    assert [p["truncated"] for p in body] == [True, False]


def test_concurrent_requests_are_batched_and_each_gets_its_own_results(live, classifier):
    rng = random.Random(3)
    requests = [[f"{t} {i}-{j}" for j, (t, _) in enumerate(sentiment_rows(rng.randint(1, 20), seed=i))]
                for i in range(300)]
    before = _batch_counts(live)

    async def send_all():
        async with httpx.AsyncClient(base_url=live, timeout=120, limits=httpx.Limits(max_connections=64)) as client:
            return await asyncio.gather(*[client.post("/v1/predict", json={"texts": texts}) for texts in requests])

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * 300
    texts = [t for texts in requests for t in texts]
    expected = classifier.predict_proba(texts)
    got = np.array([[p["probabilities"]["negative"], p["probabilities"]["positive"]]
                    for r in responses for p in r.json()["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    batches, batched_texts = (a - b for a, b in zip(_batch_counts(live), before))
    assert batched_texts == len(texts) and batches < len(texts) / 4  # real batching: many texts per batch


def _batch_counts(url: str) -> tuple[float, float]:
    lines = httpx.get(url + "/metrics").text.splitlines()
    value = {line.split(" ")[0]: float(line.split(" ")[1]) for line in lines if line.startswith("nlptransfer_batch_size")}
    return value.get("nlptransfer_batch_size_count", 0), value.get("nlptransfer_batch_size_sum", 0)


@pytest.mark.slow
def test_a_full_queue_is_503_with_retry_after_and_a_late_text_504(run):
    with server(run, "--max-queue", "4") as (url, _):
        response = _predict(url, {"texts": ["a", "b", "c", "d", "e"]})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "queue is full (4 texts waiting)" in response.json()["error"]["message"]
        assert _predict(url, {"texts": ["a", "b"]}).status_code == 200
    with server(run, "--timeout", "0.005", "--max-batch-size", "1") as (url, _):
        async def send_all():  # one text a batch: the last of 60 waits for many batches before it
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await asyncio.gather(*[client.post("/v1/predict", json={"texts": [f"late text {i}"]})
                                              for i in range(60)])

        responses = asyncio.run(send_all())
        assert {r.status_code for r in responses} == {200, 504}
        late = next(r for r in responses if r.status_code == 504)
        assert "waited more than 0.005 s" in late.json()["error"]["message"]


@pytest.mark.slow
def test_api_key_guards_everything_but_health_and_ready_and_never_shows(run):
    with server(run, "--api-key-env", "NLPT_KEY", env={"NLPT_KEY": KEY}) as (url, process):
        assert httpx.get(url + "/health").status_code == 200 and httpx.get(url + "/ready").status_code == 200
        for path in ("/metadata", "/metrics", "/v1/drift"):
            assert httpx.get(url + path).status_code == 401
        denied = _predict(url, {"texts": "x"}, headers={"Authorization": "Bearer wrong"})
        assert denied.status_code == 401 and KEY not in denied.text
        ok = _predict(url, {"texts": "x"}, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200
        seen = [httpx.get(url + p, headers={"Authorization": f"Bearer {KEY}"}).text for p in ("/metadata", "/metrics")]
        assert all(KEY not in text for text in seen)
    assert KEY not in process.stdout.read()
    missing = subprocess.run([sys.executable, "-m", "nlptransfer", "serve", str(run), "--api-key-env", "NLPT_UNSET"],
                             capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=120)
    assert missing.returncode == 2 and "NLPT_UNSET: that environment variable is empty or unset" in missing.stderr


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_and_exits_0(run):
    with server(run, "--max-wait-ms", "300") as (url, process):
        async def in_flight():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                tasks = [asyncio.create_task(client.post("/v1/predict", json={"texts": [f"text {i}"] * 5}))
                         for i in range(20)]
                await asyncio.sleep(0.1)  # the requests are queued, waiting for their batch
                process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)

        responses = asyncio.run(in_flight())
        assert [r.status_code for r in responses] == [200] * 20
        assert process.wait(timeout=60) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health", timeout=2)


@pytest.mark.slow
def test_the_prediction_log_holds_keyed_hashes_unless_texts_are_asked_for(run, tmp_path):
    import hashlib

    for flag, key in (([], "text_hmac_sha256"), (["--log-texts"], "text")):
        log = tmp_path / f"log-{key}.jsonl"
        with server(run, "--prediction-log", str(log), *flag) as (url, _):
            assert _predict(url, {"texts": ["good movie", "bad film"]}).status_code == 200
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        keyed = {"hmac_key"} if key != "text" else set()
        assert [set(line) for line in lines] == [{"time", key, "label", "score", *keyed}] * 2
        if key == "text":
            assert lines[0][key] == "good movie"
        else:  # a random key per server start: no dictionary of sha256 digests finds the text
            assert lines[0]["hmac_key"].startswith("random per server start ")
            assert len(lines[0][key]) == 64 and lines[0][key] != hashlib.sha256(b"good movie").hexdigest()


def test_the_prediction_log_rotates(run, classifier, tmp_path):
    from starlette.testclient import TestClient

    from nlptransfer.serve import ServeConfig, create_app

    log = tmp_path / "p.jsonl"
    app = create_app(classifier, ServeConfig(prediction_log=str(log), log_max_bytes=2000, log_backups=2), run)
    with TestClient(app) as client:
        for i in range(40):
            assert client.post("/v1/predict", json={"texts": [f"text number {i}"] * 3}).status_code == 200
    assert log.exists() and (tmp_path / "p.jsonl.1").exists() and (tmp_path / "p.jsonl.2").exists()
    assert not (tmp_path / "p.jsonl.3").exists() and log.stat().st_size <= 2200


@pytest.mark.slow
def test_two_worker_processes_serve_and_share_their_metrics(run, tmp_path):
    log = tmp_path / "p.jsonl"
    with server(run, "--workers", "2", "--prediction-log", str(log)) as (url, _):
        for i in range(30):
            assert _predict(url, {"texts": [f"text {i % 2}"]}).status_code == 200
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        # the workers share one random key: the same text has the same hash whichever answered
        assert len(lines) == 30 and len({line["hmac_key"] for line in lines}) == 1
        assert len({line["text_hmac_sha256"] for line in lines}) == 2
        text = httpx.get(url + "/metrics").text
        line = next(x for x in text.splitlines()
                    if x.startswith('nlptransfer_requests_total{endpoint="/v1/predict",status="200"}'))
        assert float(line.split()[-1]) == 30  # every worker's requests, whichever answered the scrape


def test_create_app_mounts_in_an_asgi_stack(classifier, run):
    from starlette.testclient import TestClient

    from nlptransfer.serve import create_app

    with TestClient(create_app(classifier, folder=run)) as client:
        assert client.get("/ready").json() == {"status": "ready"}
        assert client.post("/v1/predict", json={"texts": "good"}).json()["predictions"][0]["label"] in (
            "negative", "positive")


@pytest.mark.slow
def test_the_dockerfile_and_kubernetes_manifest_match_the_server():
    import yaml

    from nlptransfer.cli import build_parser

    port = build_parser().parse_args(["serve", "x"]).port
    docker = (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
    instructions = [line.split()[0] for line in docker if line.strip() and not line.startswith("#")
                    and not line.startswith(" ")]
    assert instructions[0] == "FROM" and set(instructions) <= {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER",
                                                                "EXPOSE", "CMD"}
    expose = next(line for line in docker if line.startswith("EXPOSE"))
    cmd = json.loads(next(line for line in docker if line.startswith("CMD"))[4:])
    assert expose.split()[1] == str(port) and cmd[:2] == ["nlptransfer", "serve"] and cmd[cmd.index("--port") + 1] == str(port)
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    pod = kinds["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": port}
    assert container["ports"][0]["containerPort"] == port and container["resources"]["requests"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == port
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    args = build_parser().parse_args(container["args"][1:])
    assert args.func.__module__ == "nlptransfer.cli.serve" and args.port == port


# -- live drift on a real model (the embedded MiniLM trained on SST-2) and a bounded soak ---------------------------

SST2 = ROOT.parent / "shared" / "data" / "sst2"


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory) -> Path:
    if not (SST2 / "train_2k.tsv").exists():
        pytest.skip(f"SST-2 is not at {SST2}: the drift tests need it")
    import nlptransfer

    out = tmp_path_factory.mktemp("sst2_serve")
    return nlptransfer.finetune("sentiment-minilm-head", data=str(SST2 / "train_2k.tsv"), overrides={
        "training.epochs": 3, "training.progress": False, "data.max_length": 64, "output.dir": str(out)}).path


def _feed(url: str, texts: list[str]) -> dict:
    for start in range(0, len(texts), 16):
        assert _predict(url, {"texts": texts[start:start + 16]}).status_code == 200
    return httpx.get(url + "/v1/drift").json()


@pytest.mark.slow
def test_drift_stays_off_for_held_out_texts_of_the_same_kind_and_goes_on_for_another_domain(sst2_run):
    import pandas as pd

    dev = pd.read_csv(SST2 / "dev.tsv", sep="\t", quoting=3)["sentence"].astype(str).tolist()
    topics = [json.loads(line)["text"] for line in (ROOT / "examples" / "topics.jsonl").read_text().splitlines()]
    with server(sst2_run) as (url, _):
        same = _feed(url, dev)
        metrics = httpx.get(url + "/metrics").text
    assert same["alarm"] is False, same
    assert same["window_texts"] == 500 and same["label_psi"] < 0.25 and same["embedding_mmd"] < 0.05
    assert "nlptransfer_drift_alarm 0.0" in metrics
    with server(sst2_run) as (url, _):
        other = _feed(url, topics)
        metrics = httpx.get(url + "/metrics").text
    assert other["alarm"] is True, other
    assert other["embedding_p_value"] < 0.01 and other["embedding_mmd"] >= 0.05
    assert "embedding MMD p-value" in other["status"]
    assert "nlptransfer_drift_alarm 1.0" in metrics


@pytest.mark.slow
def test_a_bounded_soak_shows_no_memory_growth(run):
    import psutil

    with server(run) as (url, process):
        texts = [t for t, _ in sentiment_rows(64, seed=5)]

        async def load(n: int):
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=16)) as client:
                for start in range(0, n, 16):
                    rs = await asyncio.gather(*[client.post("/v1/predict", json={"texts": texts[(i % 8) * 8:][:8]})
                                                for i in range(start, start + 16)])
                    assert all(r.status_code == 200 for r in rs)

        asyncio.run(load(800))  # warm-up: allocators, caches, the drift window fill up
        before = psutil.Process(process.pid).memory_info().rss
        asyncio.run(load(4000))
        after = psutil.Process(process.pid).memory_info().rss
    assert after <= before * 1.05, (before, after)
