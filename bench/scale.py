"""Production mode under load, printed as JSON: web replicas behind a load balancer, 1/2/3 workers, a worker
and a replica SIGKILLed mid-run; the embedded bot under the same load; micro-batching throughput.

    .venv/bin/python bench/scale.py                       # 50 users x 4 photos, workers 1 2 3, 256 px
    .venv/bin/python bench/scale.py --users 10 --photos 2 --workers 1 --no-batching-bench   # a quick look

Everything is local and real: a throwaway PostgreSQL (tests/postgres.py), ``python -m bot migrate``, two
``python -m bot web`` replicas behind a small round-robin HTTP load balancer (aiohttp; a dead backend answers
502, so Telegram delivers the update again), N ``python -m bot worker`` processes, and the fake Bot API of
tests/fake_telegram.py in webhook push mode with Telegram's 30 messages/s limit (429 beyond it). Each user
sends a photo, presses a preset under the menu, waits for the picture, and again (closed loop). When a quarter
of the jobs are done, one worker and one replica are SIGKILLed and started again.

Per scenario: jobs/s, p50/p95 seconds from button press to photo, jobs lost (accepted but never delivered;
must be 0), duplicates (photos beyond one per job), 429 answers, SIGKILLs, Bot API calls per job (the photo's
menu included; start-up and polling not) and by method. ``batching``: images/s of the
facade's micro-batches (``Stylizer.stylize_batch``) at 512 px against batch size 1, CIN and AdaIN, on this
machine's device.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bot_helpers import wait_healthy  # noqa: E402
from fake_telegram import FakeTelegram  # noqa: E402
from postgres import create_database, free_port, postgres_server  # noqa: E402

log = logging.getLogger("bench.scale")
#: Bot API methods that are not per job: start-up, registration, polling
SETUP_CALLS = frozenset({"getMe", "getUpdates", "setMyCommands", "setWebhook", "deleteWebhook", "getWebhookInfo",
                         "setChatMenuButton", "setMyDescription", "setMyShortDescription", "close", "logOut"})


def _photo(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    rgb = np.stack([np.sin(x / (11 + seed % 7) + rng.uniform(0, 6)), np.cos(y / 13 + rng.uniform(0, 6)),
                    np.sin((x + y) / 17)], -1) * 0.5 + 0.5
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype("uint8")).save(buf, "JPEG", quality=90)
    return buf.getvalue()


async def _balancer(backends: list[str]) -> tuple[web.AppRunner, int]:
    """Round-robin reverse proxy for Telegram's POSTs; a dead backend answers 502 (Telegram retries)."""
    turn = iter(range(10**9))
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        backend = backends[next(turn) % len(backends)]
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith(("x-telegram", "content-type"))}
        try:
            async with session.post(backend + request.path, data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=60)) as response:
                return web.Response(status=response.status, body=await response.read())
        except (aiohttp.ClientError, TimeoutError, OSError):
            return web.Response(status=502, text="bad gateway")

    app = web.Application(client_max_size=4 * 2**20)
    app.router.add_post("/{tail:.*}", forward)
    app.on_cleanup.append(lambda _: session.close())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


class Procs:
    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder, self.procs = env, folder, {}  # type: ignore[var-annotated]

    def start(self, name: str, *args: str, **extra: str) -> None:
        (self.folder / name).mkdir(exist_ok=True)
        out = (self.folder / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=self.folder / name,
                                            env=dict(self.env, DATA_DIR="var", **extra), stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


class Seen:
    """What the bot sent each chat so far (menus with a preset button, photos), read incrementally."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.tg, self.read = tg, 0
        self.menus: dict[int, list[tuple[int, str]]] = {}
        self.photos: dict[int, int] = {}

    def update(self) -> Seen:
        for call in self.tg.calls[self.read:]:
            chat = call.params.get("chat_id")
            if not call.ok or not isinstance(chat, int):
                continue
            if call.method == "sendPhoto":
                self.photos[chat] = self.photos.get(chat, 0) + 1
            elif call.method == "sendMessage":
                markup = call.params.get("reply_markup") or {}
                data = [b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row]
                preset = next((d for d in data if d.startswith("ps:")), None)
                if preset:
                    self.menus.setdefault(chat, []).append((call.result["message_id"], preset))
        self.read = len(self.tg.calls)
        return self


async def _user(seen: Seen, user: int, photos: int, latencies: list[float], timeout: float) -> int:
    """One closed-loop user; returns how many of its jobs never came back."""
    tg, lost = seen.tg, 0
    for k in range(photos):
        tg.user_sends_photo(user, _photo(user * 10 + k))
        try:
            await tg.wait_until(lambda k=k: len(seen.update().menus.get(user, [])) > k, timeout)
        except AssertionError:
            return lost + photos - k
        message_id, preset = seen.menus[user][k]
        pressed = time.monotonic()
        tg.user_presses(user, message_id, preset)
        try:
            await tg.wait_until(lambda k=k: seen.update().photos.get(user, 0) > k, timeout)
            latencies.append(time.monotonic() - pressed)
        except AssertionError:
            lost += 1
    return lost


async def scenario(mode: str, workers: int, args: argparse.Namespace, pg_base: str, folder: Path) -> dict:
    tg = await FakeTelegram().start()
    tg.limit_rate(30)
    senders = (2 + workers) if mode == "production" else 1
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "DATABASE_", "DATA_DIR"))}
    env.update(PYTHONPATH=str(ROOT), BOT_TOKEN=tg.token, TELEGRAM_BASE_URL=tg.base_url,
               TELEGRAM_BASE_FILE_URL=tg.base_file_url, STYLIZER_DEVICE=args.device, OUTPUT_SIZE=str(args.size),
               WORKERS=str(args.threads), RATE_PER_MINUTE="1000", MAX_JOBS_PER_USER="4", MAX_QUEUE="1000",
               PROGRESS_INTERVAL="1.5", HEARTBEAT_TIMEOUT="5", LOG_LEVEL=args.log_level,
               MESSAGES_PER_SECOND=f"{30 / senders:.2f}")
    procs = Procs(env, folder)
    lb = None
    kills = 0
    try:
        if mode == "production":
            url = create_database(pg_base, f"scale_{mode}_{workers}")
            procs.env.update(DATABASE_URL=url, WEBHOOK_SECRET="bench_secret")
            subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=folder, env=procs.env, check=True,
                           capture_output=True, timeout=120)
            replicas = {name: free_port() for name in ("web_0", "web_1")}
            lb, lb_port = await _balancer([f"http://127.0.0.1:{p}" for p in replicas.values()])
            procs.env["WEBHOOK_URL"] = f"http://127.0.0.1:{lb_port}/tg"
            for name, port in replicas.items():
                procs.start(name, "web", WEBHOOK_LISTEN=f"127.0.0.1:{port}")
            for i in range(workers):
                procs.start(f"worker_{i}", "worker")
            for port in replicas.values():
                await wait_healthy(port, 120)
            tg.push_webhooks()
        else:
            procs.start("embedded", WORKERS=str(max(args.threads, 2)))
            await tg.wait_until(lambda: any(c.method == "setMyCommands" for c in tg.calls), 120)
        await asyncio.sleep(3 if mode == "production" else 0)  # workers import torch and load the nets
        total = args.users * args.photos
        latencies: list[float] = []
        started = time.monotonic()
        seen = Seen(tg)
        users = [asyncio.create_task(_user(seen, 9000 + u, args.photos, latencies, args.timeout))
                 for u in range(args.users)]
        if mode == "production" and args.kill:
            while len(latencies) < total // 4 and not all(t.done() for t in users):
                await asyncio.sleep(0.1)
            procs.kill("worker_0")
            procs.kill("web_0")
            kills = 2
            await asyncio.sleep(1.0)
            procs.start("worker_0", "worker")
            procs.start("web_0", "web", WEBHOOK_LISTEN=f"127.0.0.1:{replicas['web_0']}")
        lost = sum(await asyncio.gather(*users))
        elapsed = time.monotonic() - started
        delivered = sum(seen.update().photos.get(9000 + u, 0) for u in range(args.users))
        quantiles = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [float("nan")] * 19
        # Bot API calls the bot made for the jobs (set-up and polling excluded): Telegram's 30 messages/s divided by
        # this is the bot's ceiling in jobs/s, whatever the workers
        calls: dict[str, int] = {}
        for call in tg.calls:
            if call.method not in SETUP_CALLS:
                calls[call.method] = calls.get(call.method, 0) + 1
        return {
            "mode": mode, "web_replicas": 2 if mode == "production" else 0, "workers": workers,
            "jobs": total, "seconds": round(elapsed, 1), "jobs_per_s": round(len(latencies) / elapsed, 2),
            "p50_s": round(statistics.median(latencies), 2) if latencies else None,
            "p95_s": round(quantiles[18], 2), "lost": lost, "duplicates": max(0, delivered - len(latencies)),
            "http_429": tg.rate_limited, "sigkills": kills,
            "calls_per_job": round(sum(calls.values()) / max(1, len(latencies)), 2),
            "calls_by_method": dict(sorted(calls.items())),
        }
    finally:
        procs.stop()
        if lb is not None:
            await lb.cleanup()
        await tg.stop()


def batching(device: str, size: int, count: int = 16) -> list[dict]:
    """Images/s of micro-batches against one at a time, same pictures, same style."""
    import torch

    from stylizer.facade import StyleRef, Stylizer, StylizeRequest

    torch.set_grad_enabled(False)
    stylizer = Stylizer()
    from PIL import Image

    pictures = [Image.open(io.BytesIO(_photo(i, (size, size * 3 // 4)))).convert("RGB") for i in range(count)]
    cin = next(p.name for p in stylizer.manifest.enabled_presets() if p.method == "cin")
    rows = []
    sample = ROOT / "bot" / "assets" / "sample.jpg"
    for method, styles in (("cin", [StyleRef(preset=cin)]), ("adain", [StyleRef(image=sample)])):
        requests = [StylizeRequest(content=p, styles=styles, size=size, device=device, method=method)
                    for p in pictures]
        stylizer.stylize_batch(requests[:2], batch=2)  # warm up (weights, kernels)
        for batch in (1, 2, 4, 8):
            t0 = time.perf_counter()
            if batch == 1:
                for r in requests:
                    stylizer.stylize(r)
            else:
                stylizer.stylize_batch(requests, batch=batch)
            seconds = time.perf_counter() - t0
            rows.append({"method": method, "size": size, "batch": batch, "device": device,
                         "images_per_s": round(count / seconds, 2)})
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--size", type=int, default=256, help="OUTPUT_SIZE of the jobs")
    ap.add_argument("--threads", type=int, default=1, help="WORKERS (threads) per worker process")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--timeout", type=float, default=300, help="seconds a user waits before a job counts as lost")
    ap.add_argument("--no-kill", dest="kill", action="store_false")
    ap.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the bot processes")
    ap.add_argument("--keep", type=Path, help="keep the processes' folders and logs here")
    ap.add_argument("--no-embedded", dest="embedded", action="store_false")
    ap.add_argument("--no-batching-bench", dest="batching", action="store_false")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out: dict = {"users": args.users, "photos_per_user": args.photos, "size": args.size, "cpus": os.cpu_count(),
                 "scenarios": []}
    with tempfile.TemporaryDirectory(prefix="scale_") as scratch, postgres_server() as pg_base:
        tmp = str(args.keep or scratch)
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for workers in args.workers:
            folder = Path(tmp) / f"prod_{workers}"
            folder.mkdir()
            out["scenarios"].append(await scenario("production", workers, args, pg_base, folder))
            print(json.dumps(out["scenarios"][-1]), file=sys.stderr)
        if args.embedded:
            folder = Path(tmp) / "embedded"
            folder.mkdir()
            out["scenarios"].append(await scenario("embedded", 0, args, pg_base, folder))
            print(json.dumps(out["scenarios"][-1]), file=sys.stderr)
    if args.batching:
        out["batching"] = batching(args.device, 512)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
