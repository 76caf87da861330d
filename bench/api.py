"""The HTTP API under load, printed as JSON, in two deployments on 127.0.0.1: ``embedded`` — ``python -m bot``
without a token (SQLite, in-process workers) in its own process; ``production`` — a throwaway PostgreSQL,
``python -m bot migrate``, one ``web`` replica and one ``worker`` in folders of their own (the web role needs a
Telegram API for its webhook: the tests' fake one, in this process).

    .venv/bin/python bench/api.py                         # both, 1/8/32 clients, 512 px, 32 uploads of 20 MB
    .venv/bin/python bench/api.py --modes embedded --clients 1 8 --requests 16 --no-uploads   # a quick look

Sections: ``predict`` — ``POST /model/predict?model=<preset>`` (512 px photo, a CIN preset): p50/p95 seconds and
requests/s per number of concurrent clients; ``jobs`` — ``POST /v1/stylizations`` + poll until done + GET result,
same figures; ``uploads`` — the server's peak resident memory (VmHWM) before and after 32 concurrent 20 MB uploads
(refused with 413 only past MAX_UPLOAD_MB, so these are read and checked in full).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from bot_helpers import wait_healthy  # noqa: E402
from fake_telegram import FakeTelegram  # noqa: E402
from postgres import create_database, free_port, postgres_server  # noqa: E402


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


def _env(args: argparse.Namespace, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_TOKEN", "DATABASE_", "WEBHOOK_"))}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR="var", LOG_LEVEL="WARNING", OUTPUT_SIZE=str(args.size),
               API_REQUESTS_PER_MINUTE="100000", API_JOBS_AT_ONCE="1000", API_JOBS_PER_MINUTE="100000",
               API_QUEUE_SHARE="1", MAX_QUEUE="10000", STYLIZER_DEVICE=args.device)
    return env


@contextlib.asynccontextmanager
async def embedded(args: argparse.Namespace, folder: Path):  # type: ignore[no-untyped-def]
    """``python -m bot`` without a token; yields (base URL, the pid whose memory the uploads section reads)."""
    listen = f"127.0.0.1:{free_port()}"
    server = subprocess.Popen([sys.executable, "-m", "bot"], env=dict(_env(args, folder), HTTP_LISTEN=listen),
                              cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "Stylebot HTTP service" in server.stdout.readline()  # type: ignore[union-attr]
        yield f"http://{listen}", server.pid
    finally:
        server.terminate()
        server.wait(30)


@contextlib.asynccontextmanager
async def production(args: argparse.Namespace, folder: Path):  # type: ignore[no-untyped-def]
    """PostgreSQL + migrate + one web replica + one worker, each in its own folder; yields (web URL, web pid)."""
    with postgres_server() as pg_base:
        tg = await FakeTelegram().start()
        env = _env(args, folder)
        port = free_port()
        env.update(BOT_TOKEN=tg.token, TELEGRAM_BASE_URL=tg.base_url, TELEGRAM_BASE_FILE_URL=tg.base_file_url,
                   DATABASE_URL=create_database(pg_base, "bench_api"), WEBHOOK_SECRET="bench_secret",
                   WEBHOOK_URL=f"http://127.0.0.1:{port}/tg", HEARTBEAT_TIMEOUT="10")
        subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=folder, env=env, check=True,
                       capture_output=True, timeout=120)
        procs = []
        try:
            for role, extra in (("web", {"WEBHOOK_LISTEN": f"127.0.0.1:{port}"}), ("worker", {})):
                (folder / role).mkdir()
                procs.append(subprocess.Popen([sys.executable, "-m", "bot", role], env=dict(env, **extra),
                                              cwd=folder / role, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            await wait_healthy(port, 120)
            await asyncio.sleep(5)  # the worker imports torch and loads the nets
            yield f"http://127.0.0.1:{port}", procs[0].pid
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            await tg.stop()


async def measure(args: argparse.Namespace, mode: str) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-api-{mode}-"))
    deployment = embedded if mode == "embedded" else production
    async with deployment(args, folder) as (base, pid):
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
        what = {"embedded": "python -m bot without a token, SQLite",
                "production": "PostgreSQL, 1 web replica + 1 worker (separate processes and folders)"}[mode]
        result: dict = {"mode": mode, "what": what, "predict": [], "jobs": []}
        for clients in args.clients:
            n = max(args.requests, clients)
            result["predict"].append(await _load(base, clients, n, predict))
            print(json.dumps(result["predict"][-1]), file=sys.stderr)
            result["jobs"].append(await _load(base, clients, n, job))
            print(json.dumps(result["jobs"][-1]), file=sys.stderr)
        if args.uploads:
            before = _hwm(pid)
            blob = os.urandom(20 * 2**20 - 4096)

            async def upload(http: aiohttp.ClientSession, i: int) -> None:
                async with http.post(base + "/v1/stylizations", data=_form("content", blob, preset=preset)) as r:
                    assert r.status == 415, r.status  # read in full, then found not to be a picture
            await _load(base, 32, 32, upload)
            result["uploads"] = {"concurrent": 32, "mb_each": 20, "peak_rss_mb_before": before,
                                 "peak_rss_mb_after": _hwm(pid), "process": "web" if mode == "production" else "all"}
        return result


async def main(args: argparse.Namespace) -> dict:
    out: dict = {"size": args.size, "device": args.device, "cpus": os.cpu_count(), "modes": []}
    for mode in args.modes:
        out["modes"].append(await measure(args, mode))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--requests", type=int, default=32, help="requests per section and client count")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-uploads", dest="uploads", action="store_false")
    ap.add_argument("--modes", nargs="+", choices=["embedded", "production"], default=["embedded", "production"])
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=1))
