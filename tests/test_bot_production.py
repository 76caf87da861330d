"""Production mode end to end: ``python -m bot migrate``, two ``web`` replicas and two ``worker`` processes on a
throwaway PostgreSQL, driven by the fake Bot API in webhook push mode (round-robin over the replicas, 429
beyond 30 messages/s). A worker is SIGKILLed while it holds jobs and a replica while updates are arriving;
every accepted job is still delivered, none twice, and every update is a row in PostgreSQL.

Each process keeps its own DATA_DIR, like separate machines: the workers have none of the pictures the
replicas took in and must fetch them with ``getFile``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from bot_helpers import buttons_of, make_settings, picture, rows, wait_healthy
from postgres import free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


class Cluster:
    """The processes of one deployment; logs under ``tmp``."""

    def __init__(self, tg, tmp: Path, database_url: str) -> None:  # type: ignore[no-untyped-def]
        self.tmp = tmp
        self.public = f"http://127.0.0.1:{free_port()}/tg/hook"  # the load balancer's URL Telegram is given
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "DATABASE_", "DATA_DIR"))}
        self.env.update(
            PYTHONPATH=str(ROOT), BOT_TOKEN=tg.token, TELEGRAM_BASE_URL=tg.base_url,
            TELEGRAM_BASE_FILE_URL=tg.base_file_url, DATABASE_URL=database_url, STYLIZER_DEVICE="cpu",
            OUTPUT_SIZE="192", WORKERS="1", PROGRESS_INTERVAL="0.3", RATE_PER_MINUTE="100", MAX_JOBS_PER_USER="3",
            HEARTBEAT_TIMEOUT="3", BATCH_MAX="4", BATCH_WAIT_MS="50", MESSAGES_PER_SECOND="7",
            WEBHOOK_URL=self.public, WEBHOOK_SECRET="prod_s3cret", LOG_LEVEL="INFO", ALBUM_WAIT="0.3",
        )
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def run(self, role: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", role], cwd=self.tmp, env=self.env, capture_output=True,
                              text=True, timeout=120)

    def apikey(self, name: str) -> str:
        """A new API key made as an operator would (``python -m bot apikey create``): the last line printed."""
        made = subprocess.run([sys.executable, "-m", "bot", "apikey", "create", name], cwd=self.tmp, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip().splitlines()[-1]

    def start(self, name: str, role: str) -> None:
        """A process in its own folder with a relative DATA_DIR, so no two see each other's files."""
        env = dict(self.env, DATA_DIR="var")
        (self.tmp / name).mkdir(exist_ok=True)
        if role == "web":
            self.ports[name] = self.ports.get(name) or free_port()
            env["WEBHOOK_LISTEN"] = f"127.0.0.1:{self.ports[name]}"
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "bot", role], cwd=self.tmp / name, env=env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def check(self) -> None:
        """Fail at once when a process died on its own (not killed by the test)."""
        for name, proc in self.procs.items():
            if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop_all(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
        return codes

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")


async def test_web_replicas_and_workers_survive_sigkill(tg, tmp_path: Path, postgres_url: str) -> None:
    cluster = Cluster(tg, tmp_path, postgres_url)
    settings = make_settings(tg, tmp_path, database_url=postgres_url)  # for rows(): the same database
    migrated = cluster.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    tg.limit_rate(30)
    users = list(range(501, 513))
    try:
        for name in ("web_a", "web_b"):
            cluster.start(name, "web")
        cluster.start("worker_a", "worker")  # worker_b joins after worker_a is killed holding jobs
        for name in ("web_a", "web_b"):
            await wait_healthy(cluster.ports[name])
        assert tg.webhook is not None and tg.webhook["secret_token"] == "prod_s3cret"
        tg.push_webhooks([f"http://127.0.0.1:{cluster.ports[n]}" for n in ("web_a", "web_b")])

        for i, user in enumerate(users):
            tg.user_sends_photo(user, picture(160, 120, seed=i))
        menus: dict[int, tuple[int, str]] = {}

        def menus_in() -> bool:
            for call in tg.calls:
                chat = call.params.get("chat_id")
                if call.ok and call.method == "sendMessage" and chat in users and chat not in menus:
                    preset = next((d for d in buttons_of(call) if d.startswith("ps:")), None)
                    if preset:
                        menus[chat] = (call.result["message_id"], preset)
            return len(menus) == len(users)

        await tg.wait_until(menus_in, timeout=120)
        for user in users[:6]:
            message_id, preset = menus[user]
            tg.user_presses(user, message_id, preset)
        # worker_a claims jobs (batches of up to 4); kill it while it holds them
        await _wait(lambda: rows(settings, "SELECT count(*) FROM jobs WHERE status = 'running'")[0][0] > 0, 120,
                    cluster=cluster)
        cluster.kill("worker_a")
        cluster.start("worker_b", "worker")
        # the other half of the presses, and a replica killed while they arrive
        for user in users[6:]:
            message_id, preset = menus[user]
            tg.user_presses(user, message_id, preset)
        await asyncio.sleep(0.3)
        cluster.kill("web_a")
        cluster.start("worker_a", "worker")  # restarted, takes its share again
        await _wait(lambda: rows(settings, "SELECT count(*) FROM jobs WHERE status = 'done'")[0][0] == len(users),
                    240, lambda: f"jobs: {rows(settings, 'SELECT id, status, attempts FROM jobs ORDER BY id')}\n"
                                 f"events: {rows(settings, 'SELECT update_id, kind, outcome, reason FROM events')}",
                    cluster)
    finally:
        codes = cluster.stop_all()
    jobs = rows(settings, "SELECT id, user_id, status, attempts FROM jobs ORDER BY id")
    assert len(jobs) == len(users) and {j[1] for j in jobs} == set(users)  # one job per press, re-deliveries too
    photos = Counter(c.params["chat_id"] for c in tg.calls if c.method == "sendPhoto" and c.ok)
    for _job_id, user, status, attempts in jobs:
        assert status == "done"
        # never twice, except a job whose worker died between sending and recording (then it ran again)
        assert photos[user] == 1 or (photos[user] == 2 and attempts > 1), (user, photos[user], attempts)
    assert any(attempts > 1 for *_, attempts in jobs)  # the killed worker's jobs were redone elsewhere
    fetched = [*(tmp_path / "worker_a" / "var" / "images").glob("*/fetched/*"),
               *(tmp_path / "worker_b" / "var" / "images").glob("*/fetched/*")]
    assert len(fetched) >= len(users)  # every picture came to a worker through getFile
    delivered = {u for u, _, status in tg.deliveries if status == 200}
    pushed = len(users) * 2
    assert len(delivered) == pushed and not tg._updates  # every update answered 200 in the end
    assert rows(settings, "SELECT count(DISTINCT update_id) FROM events")[0][0] == pushed
    assert rows(settings, "SELECT count(*) FROM processed_updates")[0][0] == pushed
    assert rows(settings, "SELECT count(*) FROM pgqueuer WHERE status = 'queued'")[0][0] == 0
    assert codes["worker_b"] == 0 and codes["web_b"] == 0, (codes, cluster.log("worker_b")[-2000:])


async def _wait(condition, timeout: float, explain=None, cluster=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if cluster is not None:
            cluster.check()
        if time.monotonic() > deadline:
            raise AssertionError("timed out" + (f": {explain()}" if explain else ""))
        await asyncio.sleep(0.2)


async def test_state_in_the_database_and_cancel_across_processes(tg, tmp_path: Path, postgres_url: str) -> None:
    """Replica A takes the photo and the "high quality" press, replica B the style picture (the own-style step
    lives in the database) and the Cancel press; the worker running the job sees the cancel in the row."""
    from bot import web, worker
    from bot.web import SECRET_HEADER

    ports = {"a": free_port(), "b": free_port()}
    hook = "http://127.0.0.1:9/tg/hook"  # the load balancer's address; updates go to the replicas directly

    def settings_for(name: str, **extra):  # type: ignore[no-untyped-def]
        return make_settings(tg, tmp_path / name, database_url=postgres_url, webhook_url=hook,
                             webhook_listen=f"127.0.0.1:{ports.get(name, 1)}", webhook_secret="s3cret",
                             gatys_steps=5000, heartbeat_timeout=3, **extra)

    from bot.db import create_engine, migrate

    engine = create_engine(postgres_url)
    await migrate(engine)
    await engine.dispose()
    stops = {name: asyncio.Event() for name in ("a", "b", "w")}
    tasks = [asyncio.create_task(web.serve(settings_for("a"), stops["a"])),
             asyncio.create_task(web.serve(settings_for("b"), stops["b"])),
             asyncio.create_task(worker.serve(settings_for("w"), stops["w"]))]
    settings = settings_for("a")
    try:
        for port in ports.values():
            await wait_healthy(port)
        async with aiohttp.ClientSession() as http:
            async def post(name: str, update: dict) -> None:
                async with http.post(f"http://127.0.0.1:{ports[name]}/tg/hook", json=update,
                                     headers={SECRET_HEADER: "s3cret"}) as response:
                    assert response.status == 200

            await post("a", tg.user_sends_photo(601, picture(96, 64, seed=3)))
            menu = await tg.wait_for("sendMessage", lambda c: "hq:" in str(c.params.get("reply_markup")))
            hq = next(d for d in buttons_of(menu) if d.startswith("hq:"))
            await post("a", tg.user_presses(601, menu.result["message_id"], hq))
            await post("b", tg.user_sends_photo(601, picture(80, 80, seed=4)))  # the style, on the other replica
            await _wait(lambda: rows(settings, "SELECT status FROM jobs") == [("running",)], 60)
            status = await tg.wait_for(["sendMessage", "editMessageText"],
                                       lambda c: any(d.startswith("x:") for d in buttons_of(c)))
            cancel = next(d for d in buttons_of(status) if d.startswith("x:"))
            message_id = status.params.get("message_id") or status.result["message_id"]
            await post("b", tg.user_presses(601, message_id, cancel))
            await _wait(lambda: rows(settings, "SELECT status FROM jobs") == [("cancelled",)], 30)
            await asyncio.sleep(2.0)  # the worker stops at its next progress report and sends nothing
    finally:
        for event in stops.values():
            event.set()
        await asyncio.gather(*tasks)
    assert rows(settings, "SELECT method FROM jobs") == [("gatys",)]
    results = [c for c in tg.calls if c.method == "sendPhoto" and any(d.startswith("rs:") for d in buttons_of(c))]
    assert results == []  # a result has the strength buttons; none was sent after the cancel
    assert rows(settings, "SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked')")[0][0] == 0


async def test_each_sender_keeps_to_its_share_of_telegrams_limit(tg, tmp_path: Path) -> None:
    """Three processes' worth of senders, each with MESSAGES_PER_SECOND = 10, fire bursts at a Bot API that
    answers 429 beyond 30 messages in any second: nothing is refused, nothing is lost."""
    from telegram.ext import ExtBot

    from bot.app import rate_limiter

    tg.limit_rate(30)
    tg.user(77)
    settings = make_settings(tg, tmp_path, messages_per_second=10)
    bots = [ExtBot(tg.token, base_url=tg.base_url, rate_limiter=rate_limiter(settings)) for _ in range(3)]
    for bot in bots:
        await bot.initialize()
    try:
        for _ in range(2):  # a burst, a pause (the buckets refill), another burst
            await asyncio.gather(*(bot.send_message(77, f"m{i}") for bot in bots for i in range(25)))
            await asyncio.sleep(1.2)
    finally:
        for bot in bots:
            await bot.shutdown()
    assert tg.rate_limited == 0
    assert len([c for c in tg.calls if c.method == "sendMessage" and c.ok]) == 150
