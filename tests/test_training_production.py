"""Admin preset training in production mode: ``/train`` reaches a web replica, a worker trains it, Publish is
pressed through the other replica, and the new preset is listed by both replicas and rendered by a worker that
was already running and never saw the training (it installs the preset from the database). Deleting it takes it
off every replica. Each process has its own folder, as on separate machines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from api_helpers import form
from bot_helpers import UserChat, buttons_of, make_settings, picture, rows, wait_healthy
from test_bot_production import Cluster

from stylizer.facade import Stylizer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
ADMIN = 900


async def _names(http: aiohttp.ClientSession, base: str, auth: dict) -> set[str]:
    async with http.get(base + "/v1/presets", headers=auth) as r:
        assert r.status == 200
        return {p["name"] for p in json.loads(await r.text())["items"]}


async def _until(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def _deploy(tg, cluster: Cluster) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Two web replicas and two workers, the updates pushed round robin to either replica; their base URLs."""
    for name, role in (("web_a", "web"), ("web_b", "web"), ("worker_a", "worker"), ("worker_b", "worker")):
        cluster.start(name, role)
    for name in ("web_a", "web_b"):
        await wait_healthy(cluster.ports[name])
    a, b = (f"http://127.0.0.1:{cluster.ports[n]}" for n in ("web_a", "web_b"))
    tg.push_webhooks([a, b])
    return a, b


async def test_a_worker_trains_and_every_process_gets_the_preset(tg, tmp_path: Path, postgres_url: str,  # type: ignore[no-untyped-def]
                                                                   image_folder: Path) -> None:
    method = "cin" if "cin_base" in Stylizer().manifest.models else "johnson"
    cluster = Cluster(tg, tmp_path, postgres_url)
    cluster.env.update(ADMIN_IDS=str(ADMIN), TRAIN_CONTENT_DIR=str(image_folder), TRAIN_STEPS="4", TRAIN_SIZE="64",
                       PRESET_SYNC_SECONDS="0.5", OUTPUT_SIZE="96")
    settings = make_settings(tg, tmp_path, database_url=postgres_url)
    assert cluster.run("migrate").returncode == 0
    auth = {"Authorization": f"Bearer {cluster.apikey('partner')}"}
    admin = UserChat(tg, ADMIN)
    try:
        a, b = await _deploy(tg, cluster)  # the admin's updates reach either replica
        tg.user_sends_photo(ADMIN, picture(80, 80, seed=11), caption=f"/train prod_style {method}")
        await admin.wait_text("is queued")
        sample, publish = await admin.wait_button("tp:", method="sendPhoto", timeout=240)
        assert "Sample" in str(sample.params.get("caption")) and any(d.startswith("td:") for d in buttons_of(sample))
        trainer = next(n for n in ("worker_a", "worker_b") if "claimed here" in cluster.log(n))
        other = "worker_b" if trainer == "worker_a" else "worker_a"
        assert "claimed here" not in cluster.log(other)  # one worker trained it, once

        await admin.press(publish)
        await admin.wait_text("is live", method="editMessageCaption")
        async with aiohttp.ClientSession() as http:
            for base in (a, b):  # listed by both replicas, neither restarted
                await _until(lambda base=base: _has(http, base, auth, "prod_style"))
            cluster.kill(trainer)  # the job must run on the worker that never saw the training
            async with http.post(b + "/v1/stylizations", data=form({"content": picture(120, 80)}, preset="prod_style"),
                                 headers=auth | {"Prefer": "wait=60"}) as r:
                job = json.loads(await r.text())
            assert job["status"] == "succeeded", (job, cluster.log(other)[-3000:])

            await admin.text("/presets")
            listing, _delete = await admin.wait_button("ap:x:")
            assert "prod_style" in str(listing.params.get("text"))
            await admin.press(next(d for d in buttons_of(listing) if d.startswith("ap:x:")))  # the one trained
            for base in (a, b):  # deleted through one replica: gone from both
                await _until(lambda base=base: _gone(http, base, auth, "prod_style"))
            installed = tmp_path / other / "var" / "presets" / "installed"

            async def uninstalled() -> bool:  # and its files from the worker's disk
                return not any(installed.glob("prod_style-*"))

            await _until(uninstalled)
        cluster.check()
    finally:
        cluster.stop_all()
    assert rows(settings, "SELECT name, status FROM training_runs") == [("prod_style", "published")]
    assert rows(settings, "SELECT count(*) FROM presets WHERE name = 'prod_style'") == [(0,)]


async def _has(http: aiohttp.ClientSession, base: str, auth: dict, name: str) -> bool:
    return name in await _names(http, base, auth)


async def _gone(http: aiohttp.ClientSession, base: str, auth: dict, name: str) -> bool:
    return name not in await _names(http, base, auth)


async def test_a_stopped_worker_hands_its_training_on_and_any_replica_cancels_it(  # type: ignore[no-untyped-def]
        tg, tmp_path: Path, postgres_url: str, image_folder: Path) -> None:
    """A long training: SIGTERM on its worker puts the run back in the queue and the other worker takes it; the
    admin's Cancel, taken by whichever replica, stops it there at its next heartbeat."""
    import signal

    method = "cin" if "cin_base" in Stylizer().manifest.models else "johnson"
    cluster = Cluster(tg, tmp_path, postgres_url)
    cluster.env.update(ADMIN_IDS=str(ADMIN), TRAIN_CONTENT_DIR=str(image_folder), TRAIN_STEPS="100000",
                       TRAIN_SIZE="64")
    settings = make_settings(tg, tmp_path, database_url=postgres_url)
    assert cluster.run("migrate").returncode == 0
    admin = UserChat(tg, ADMIN)
    try:
        await _deploy(tg, cluster)
        tg.user_sends_photo(ADMIN, picture(80, 80, seed=12), caption=f"/train long_style {method}")
        _queued, cancel = await admin.wait_button("tx:")

        def claimed_by() -> list[str]:
            return [n for n in ("worker_a", "worker_b") if "claimed here" in cluster.log(n)]

        await tg.wait_until(lambda: bool(claimed_by()), timeout=60)
        first = claimed_by()[0]
        second = "worker_b" if first == "worker_a" else "worker_a"
        cluster.procs[first].send_signal(signal.SIGTERM)
        assert cluster.procs.pop(first).wait(30) == 0  # a clean stop (not one for cluster.check to report)
        assert "handed back to the queue" in cluster.log(first)
        await tg.wait_until(lambda: "claimed here" in cluster.log(second), timeout=60)
        await admin.press(cancel)
        await admin.wait_text("cancelled", method="editMessageText", timeout=60)
        cluster.check()
    finally:
        cluster.stop_all()
    assert rows(settings, "SELECT name, status FROM training_runs") == [("long_style", "cancelled")]
    assert rows(settings, "SELECT count(*) FROM blobs") == [(0,)]  # the picture went with the run
