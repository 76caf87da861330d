"""The HTTP API under load, printed as JSON: ``python -m bot`` without a token (the embedded default: SQLite,
in-process workers) in its own process on 127.0.0.1.

    .venv/bin/python bench/api.py                         # 1/8/32 clients, 512 px, 32 uploads of 20 MB
    .venv/bin/python bench/api.py --clients 1 8 --requests 16 --no-uploads   # a quick look

Sections: ``predict`` — ``POST /model/predict?model=<preset>`` (512 px photo, a CIN preset): p50/p95 seconds and
requests/s per number of concurrent clients; ``jobs`` — ``POST /v1/stylizations`` + poll until done + GET result,
same figures; ``uploads`` — the server's peak resident memory (VmHWM) before and after 32 concurrent 20 MB uploads
(refused with 413 only past MAX_UPLOAD_MB, so these are read and checked in full).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from postgres import free_port  # noqa: E402


def _photo(size: int, seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size * 3 // 4, 0:size].astype(np.float32)
    rgb = np.stack([np.sin(x / 17 + rng.uniform(0, 6)), np.cos(y / 13), np.sin((x + y) / 29)], -1) * 0.5 + 0.5
    out = io.BytesIO()
    Image.fromarray((rgb * 255).astype("uint8")).save(out, "JPEG", quality=90)
    return out.getvalue()


def _hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _form(name: str, data: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(name, data, filename="photo.jpg", content_type="image/jpeg")
    for k, v in fields.items():
        form.add_field(k, v)
    return form


async def _load(base: str, clients: int, requests: int, run) -> dict:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    todo = list(range(requests))

    async def client(http: aiohttp.ClientSession) -> None:
        while todo:
            i = todo.pop()
            t0 = time.perf_counter()
            await run(http, i)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    seconds = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return {"clients": clients, "requests": requests, "p50_s": round(statistics.median(latencies), 2),
            "p95_s": round(q[18], 2), "per_s": round(requests / seconds, 2)}


async def main(args: argparse.Namespace) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-api-"))
    listen = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "DATABASE_URL")}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR=str(folder / "var"), HTTP_LISTEN=listen, LOG_LEVEL="WARNING",
               OUTPUT_SIZE=str(args.size), API_REQUESTS_PER_MINUTE="100000", API_JOBS_AT_ONCE="1000",
               API_JOBS_PER_MINUTE="100000", MAX_QUEUE="10000", STYLIZER_DEVICE=args.device)
    server = subprocess.Popen([sys.executable, "-m", "bot"], env=env, cwd=folder, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert "Stylebot HTTP service" in server.stdout.readline()  # type: ignore[union-attr]
        base = f"http://{listen}"
        async with aiohttp.ClientSession() as http, http.get(base + "/v1/presets") as r:
            names = [p["name"] for p in (await r.json())["items"]]
        preset = "candy" if "candy" in names else names[0]  # a CIN preset: the common fast case
        photos = [_photo(args.size, i) for i in range(8)]

        async def predict(http: aiohttp.ClientSession, i: int) -> None:
            async with http.post(f"{base}/model/predict?model={preset}", data=_form("image", photos[i % 8])) as r:
                assert r.status == 200, await r.text()
                await r.read()

        async def job(http: aiohttp.ClientSession, i: int) -> None:
            async with http.post(base + "/v1/stylizations", data=_form("content", photos[i % 8], preset=preset)) as r:
                assert r.status == 202, await r.text()
                body = await r.json()
            while body["status"] not in ("succeeded", "failed"):
                await asyncio.sleep(0.1)
                async with http.get(base + body["links"]["self"]) as r:
                    body = await r.json()
            async with http.get(base + body["links"]["result"]) as r:
                assert r.status == 200
                await r.read()

        await _load(base, 1, 2, predict)  # warm up: weights, kernels
        result: dict = {"size": args.size, "preset": preset, "device": args.device, "cpus": os.cpu_count(),
                        "mode": "embedded (python -m bot without a token, SQLite)", "predict": [], "jobs": []}
        for clients in args.clients:
            n = max(args.requests, clients)
            result["predict"].append(await _load(base, clients, n, predict))
            print(json.dumps(result["predict"][-1]), file=sys.stderr)
            result["jobs"].append(await _load(base, clients, n, job))
            print(json.dumps(result["jobs"][-1]), file=sys.stderr)
        if args.uploads:
            before = _hwm(server.pid)
            blob = os.urandom(20 * 2**20 - 4096)

            async def upload(http: aiohttp.ClientSession, i: int) -> None:
                async with http.post(base + "/v1/stylizations", data=_form("content", blob, preset=preset)) as r:
                    assert r.status == 415, r.status  # read in full, then found not to be a picture
            await _load(base, 32, 32, upload)
            result["uploads"] = {"concurrent": 32, "mb_each": 20, "peak_rss_mb_before": before,
                                 "peak_rss_mb_after": _hwm(server.pid)}
        return result
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--requests", type=int, default=32, help="requests per section and client count")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-uploads", dest="uploads", action="store_false")
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=1))
