"""`nlptransfer serve` against the server a user would otherwise write, side by side in one run, on loopback.

    python benchmarks/serve.py                   # concurrency 1, 8 and 64; SST-2 dev sentences, one text a request
    python benchmarks/serve.py --requests 400    # requests per client at concurrency 1 (more at 8 and 64)

(A) FastAPI + `pipeline("text-classification")` per request on uvicorn (a sync endpoint: FastAPI's thread pool),
(B) `nlptransfer serve` (PyTorch), (C) `nlptransfer serve --backend onnx-int8`, all on the same model (the
embedded MiniLM fine-tuned on SST-2 train_2k for one epoch), and the offline ceiling: `TextClassifier.predict` on
the same texts in one call. Each server runs alone in its own process; the load generator (asyncio keep-alive
connections, one per concurrent client) sends a
fixed number of requests at each concurrency after a warm-up, and prints throughput, latency p50/p95/p99 and errors.
Writes benchmarks/results/serve.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SST2 = HERE.parent.parent / "shared" / "data" / "sst2"

ANCHOR = r'''
import sys
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline
import uvicorn

run = sys.argv[1]
pipe = pipeline("text-classification", model=run + "/model", tokenizer=run + "/tokenizer", device="cpu")
app = FastAPI()


class Body(BaseModel):
    texts: list[str]


@app.post("/v1/predict")
def predict(body: Body):
    return {"predictions": pipe(body.texts, truncation=True)}


@app.get("/ready")
def ready():
    return {"status": "ready"}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
'''


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texts() -> list[str]:
    import pandas as pd

    return pd.read_csv(SST2 / "dev.tsv", sep="\t", quoting=3)["sentence"].astype(str).tolist()


def _train(out: Path) -> Path:
    import nlptransfer

    run = nlptransfer.finetune("sentiment-minilm", data=str(SST2 / "train_2k.tsv"), overrides={
        "training.epochs": 1, "training.progress": False, "data.val_fraction": 0.1, "data.test_fraction": 0,
        "output.dir": str(out)})
    nlptransfer.export_onnx(run.path)
    return run.path


def _start(kind: str, run: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if kind == "anchor":
        cmd = [sys.executable, "-c", ANCHOR, str(run), str(port)]
    else:
        cmd = [sys.executable, "-m", "nlptransfer", "serve", str(run), "--port", str(port), "--backend",
               {"serve_torch": "torch", "serve_onnx_int8": "onnx-int8"}[kind]]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"{kind} did not become ready")


async def _connection(host: str, port: int):
    """A keep-alive HTTP/1.1 connection that posts JSON and reads the reply: a load generator light enough to leave
    the 2 cores to the server (httpx's async pool took more CPU than the servers at concurrency 64)."""
    reader, writer = await asyncio.open_connection(host, port)

    async def post(path: str, payload: dict) -> int:
        body = json.dumps(payload).encode()
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        return status

    return post, writer


async def _load(url: str, texts: list[str], concurrency: int, requests: int) -> dict:
    host, port = url.split("//")[1].split(":")
    latencies, errors, counter = [], 0, iter(range(requests))

    async def client_loop():
        nonlocal errors
        post, writer = await _connection(host, int(port))
        try:
            for i in counter:
                started = time.perf_counter()
                try:
                    ok = await post("/v1/predict", {"texts": [texts[i % len(texts)]]}) == 200
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*[client_loop() for _ in range(concurrency)])
    seconds = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return {"requests": requests, "seconds": seconds, "throughput": requests / seconds, "p50_ms": pick(0.5),
            "p95_ms": pick(0.95), "p99_ms": pick(0.99), "errors": errors}


def _offline(run: Path, texts: list[str]) -> dict:
    code = (f"import time, json, sys; sys.path.insert(0, {str(HERE.parent)!r}); import nlptransfer; "
            f"texts = json.load(open(sys.argv[1])); clf = nlptransfer.TextClassifier.load({str(run)!r}); "
            "clf.predict_proba(texts[:64]); t = time.perf_counter(); clf.predict_proba(texts); "
            "full = time.perf_counter() - t; one = []\n"
            "for x in texts[:200]:\n t = time.perf_counter(); clf.predict_proba([x]); one.append(time.perf_counter() - t)\n"
            "one.sort(); print(json.dumps({'texts_per_s': len(texts) / full, 'single_text_p50_ms': one[100] * 1000}))")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(texts, f)
    done = subprocess.run([sys.executable, "-c", code, f.name], capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"))
    os.unlink(f.name)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests at concurrency 1; x4 at 8, x16 at 64")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--run", help="an existing run folder with onnx/ (default: train one)")
    args = parser.parse_args()
    if not SST2.exists():
        raise SystemExit(f"SST-2 not found at {SST2}")
    texts = _texts()
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as out:
        run = Path(args.run) if args.run else _train(Path(out))
        offline = _offline(run, texts * 4)
        results = {"offline": offline, "servers": {}}
        for kind in ("anchor", "serve_torch", "serve_onnx_int8"):
            port = _port()
            process = _start(kind, run, port)
            try:
                url = f"http://127.0.0.1:{port}"
                asyncio.run(_load(url, texts, 8, 64))  # warm-up
                results["servers"][kind] = {c: asyncio.run(_load(url, texts, c, args.requests * {1: 1, 8: 4}.get(c, 16)))
                                            for c in levels}
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
            for c, r in results["servers"][kind].items():
                print(f"  {kind:16} c={c:<3} {r['throughput']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  "
                      f"p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}", file=sys.stderr, flush=True)
    name = {"anchor": "A: FastAPI + pipeline", "serve_torch": "B: nlptransfer serve", "serve_onnx_int8":
            "C: nlptransfer serve onnx-int8"}
    print(f"\nSST-2 dev sentences, one text per request; offline ceiling {offline['texts_per_s']:.1f} texts/s, "
          f"single-text offline latency p50 {offline['single_text_p50_ms']:.1f} ms; max-wait 5 ms")
    print("| server | concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors | vs A | vs offline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, rows in results["servers"].items():
        for c, r in rows.items():
            base = results["servers"]["anchor"][c]["throughput"]
            print(f"| {name[kind]} | {c} | {r['throughput']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                  f"{r['p99_ms']:.1f} | {r['errors']} | {r['throughput'] / base:.2f}x | "
                  f"{100 * r['throughput'] / offline['texts_per_s']:.0f}% |")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "serve.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {HERE / 'results' / 'serve.json'}")


if __name__ == "__main__":
    main()
