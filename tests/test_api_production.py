"""The HTTP API in production mode: ``migrate``, two ``web`` replicas and a ``worker`` on PostgreSQL, each in its
own folder (separate machines). A job accepted by one replica is rendered by the worker, and its result is read
through the other replica (blobs in the database); a worker SIGKILLed mid-job hands the job to another worker."""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp
import pytest
from api_helpers import form
from bot_helpers import make_settings, picture, rows, wait_healthy
from PIL import Image
from test_bot_production import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


async def _wait_status(http: aiohttp.ClientSession, url: str, headers: dict, wanted: set[str],
                       timeout: float) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with http.get(url, headers=headers) as r:
            job = json.loads(await r.text())
        if job.get("status") in wanted or asyncio.get_running_loop().time() > deadline:
            return job
        await asyncio.sleep(0.2)


async def test_api_across_replicas_and_a_killed_worker(tg, tmp_path, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    cluster = Cluster(tg, tmp_path, postgres_url)
    cluster.env.update(GATYS_STEPS="60", OUTPUT_SIZE="96")
    settings = make_settings(tg, tmp_path, database_url=postgres_url)
    assert cluster.run("migrate").returncode == 0
    auth = {"Authorization": f"Bearer {cluster.apikey('partner')}"}
    try:
        for name in ("web_a", "web_b"):
            cluster.start(name, "web")
        cluster.start("worker_a", "worker")
        for name in ("web_a", "web_b"):
            await wait_healthy(cluster.ports[name])
        a, b = (f"http://127.0.0.1:{cluster.ports[n]}" for n in ("web_a", "web_b"))
        async with aiohttp.ClientSession() as http:
            async with http.get(b + "/readyz") as r:
                assert r.status == 200
            async with http.get(a + "/v1/presets", headers=auth) as r:
                preset = json.loads(await r.text())["items"][0]["name"]
            # a quick job: accepted by A, rendered by the worker, read through B
            async with http.post(a + "/v1/stylizations", data=form({"content": picture(120, 80)}, preset=preset),
                                 headers=auth) as r:
                assert r.status == 202
                quick = json.loads(await r.text())
            done = await _wait_status(http, b + quick["links"]["self"], auth, {"succeeded", "failed"}, 120)
            assert done["status"] == "succeeded", (done, cluster.log("worker_a")[-3000:])
            async with http.get(b + quick["links"]["result"] + "?format=jpeg", headers=auth) as r:
                assert r.status == 200 and Image.open(io.BytesIO(await r.read())).size == (96, 64)
            # a slow job whose worker is killed while it runs: another worker finishes it
            data = form({"content": picture(120, 80, seed=2), "style": picture(64, 64, seed=3)}, quality="high")
            async with http.post(b + "/v1/stylizations", data=data, headers=auth) as r:
                slow = json.loads(await r.text())
            running = await _wait_status(http, a + slow["links"]["self"], auth, {"running"}, 120)
            assert running["status"] == "running"
            cluster.kill("worker_a")
            cluster.start("worker_b", "worker")
            done = await _wait_status(http, a + slow["links"]["self"], auth, {"succeeded", "failed"}, 240)
            assert done["status"] == "succeeded", (done, cluster.log("worker_b")[-3000:])
            async with http.get(a + slow["links"]["result"], headers=auth) as r:
                assert r.status == 200 and r.content_type == "image/png"
        cluster.check()
    finally:
        cluster.stop_all()
    attempts = rows(settings, "SELECT attempts FROM jobs WHERE origin = 'api' AND method = 'gatys'")
    assert attempts and attempts[0][0] >= 2  # the killed worker's attempt, then another's
