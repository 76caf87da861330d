"""The HTTP API end to end: a real server on 127.0.0.1 (the service ``python -m bot`` runs without a token) with
the real stylizer at small sizes, talked to over HTTP like any client."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from api_helpers import api_settings, form, png, running_api
from bot_helpers import picture
from clips import pan_frames, write_clip
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)
PROBLEM = "application/problem+json"


async def _json(response: aiohttp.ClientResponse) -> dict:
    return json.loads(await response.text())


async def _problem(response: aiohttp.ClientResponse, status: int, kind: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body = await _json(response)
    assert body["type"] == f"/problems/{kind}" and body["status"] == status and body["title"] and body["detail"]
    return body


async def _slow_job_running(http: aiohttp.ClientSession, base: str, headers: dict) -> dict:
    """A high-quality job, once its events say it is running (it then holds a worker for a while)."""
    data = form({"content": picture(96, 64, seed=4), "style": picture(64, 64, seed=6)}, quality="high")
    async with http.post(base + "/v1/stylizations", data=data, headers=headers) as r:
        slow = await _json(r)
    async with http.get(base + slow["links"]["events"], headers=headers) as r:
        async for line in r.content:
            if line.startswith(b"event: progress"):
                break
    return slow


def _apikey(settings, name: str, *limits: str) -> str:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "DATABASE_URL")}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR=str(settings.data_dir))
    proc = subprocess.run([sys.executable, "-m", "bot", "apikey", "create", name, *limits], env=env,
                          capture_output=True, text=True, timeout=120, cwd=settings.data_dir.parent)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


async def test_preset_style_picture_and_clip_jobs(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    async with running_api(settings) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/v1/presets") as response:
            presets = (await _json(response))["items"]
            assert response.status == 200 and presets and response.headers["RateLimit-Policy"]
        name = presets[0]["name"]
        async with http.get(base + presets[0]["thumbnail_url"]) as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
        async with http.get(base + "/v1/methods") as response:
            methods = {m["name"]: m for m in (await _json(response))["items"]}
            assert any(m["takes_pictures"] for m in methods.values()) and any(m["slow"] for m in methods.values())
        # a preset: 202, Location, then poll until it succeeds, then the picture
        async with http.post(base + "/v1/stylizations", data=form({"content": picture(96, 64)}, preset=name)) as r:
            assert r.status == 202
            job = await _json(r)
            assert r.headers["Location"] == job["links"]["self"] == f"/v1/stylizations/{job['id']}"
            assert len(job["id"]) == 32 and job["status"] in ("queued", "running", "succeeded")
        for _ in range(600):
            async with http.get(base + job["links"]["self"]) as r:
                job = await _json(r)
            if job["status"] == "succeeded":
                break
            await asyncio.sleep(0.1)
        assert job["status"] == "succeeded" and job["result_type"] == "image/png"
        async with http.get(base + job["links"]["result"]) as r:
            result = Image.open(io.BytesIO(await r.read()))
            assert r.content_type == "image/png" and result.size == (64, 43)
        async with http.get(base + job["links"]["result"], headers={"Accept": "image/jpeg"}) as r:
            assert r.content_type == "image/jpeg" and Image.open(io.BytesIO(await r.read())).format == "JPEG"
        # any picture as the style, two mixed, waiting for it (Prefer: wait)
        data = form({"content": picture(96, 64, seed=2), "style": [picture(64, 64, seed=5), png(64, 64, seed=7)]},
                    style_weights="2,1", strength=0.8, preserve_color="true")
        async with http.post(base + "/v1/stylizations", data=data, headers={"Prefer": "wait=60"}) as r:
            assert r.status == 200 and r.headers["Preference-Applied"] == "wait=60"
            mixed = await _json(r)
            assert mixed["status"] == "succeeded", mixed
        # a clip comes back as a clip
        clip = write_clip(tmp_path / "c.mp4", pan_frames(None, 6, (64, 48), 2), fps=6, audio=False).read_bytes()
        async with http.post(base + "/v1/stylizations", data=form({"content": clip}, preset=name),
                             headers={"Prefer": "wait=60"}) as r:
            video = await _json(r)
            assert r.status == 200 and video["status"] == "succeeded" and video["kind"] == "clip", video
        async with http.get(base + video["links"]["result"]) as r:
            assert r.content_type == "video/mp4" and len(await r.read()) > 1000
        async with http.get(base + "/v1/stylizations") as r:
            listed = [j["id"] for j in (await _json(r))["items"]]
            assert listed == [video["id"], mixed["id"], job["id"]]


async def test_events_idempotency_cancel_and_privacy_between_callers(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, gatys_steps=300, workers=1)
    alice, bob = _apikey(settings, "alice"), _apikey(settings, "bob")
    assert alice.startswith("sk_") and alice != bob
    as_alice = {"Authorization": f"Bearer {alice}"}
    async with running_api(settings) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/v1/presets", headers=as_alice) as r:
            name = (await _json(r))["items"][0]["name"]
        body = {"content": picture(96, 64, seed=3)}
        # idempotency: same key + same body -> same job; same key + another body -> 422
        headers = {**as_alice, "Idempotency-Key": "order-1"}
        async with http.post(base + "/v1/stylizations", data=form(body, preset=name), headers=headers) as r:
            first = await _json(r)
        async with http.post(base + "/v1/stylizations", data=form(body, preset=name), headers=headers) as r:
            assert (await _json(r))["id"] == first["id"]
        async with http.post(base + "/v1/stylizations", data=form(body, preset=name, strength=0.5),
                             headers=headers) as r:
            await _problem(r, 422, "idempotency-conflict")
        # the events of a job: its progress, then done, last
        async with http.get(base + first["links"]["events"], headers=as_alice) as r:
            assert r.content_type == "text/event-stream"
            text = await r.text()
        names = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
        assert names[-1] == "done" and names.count("done") == 1
        done = json.loads(text.strip().splitlines()[-1].removeprefix("data: "))
        assert done["status"] == "succeeded"
        # someone else's job does not exist for them (404, never 403), nor for anonymous callers
        for other in ({"Authorization": f"Bearer {bob}"}, {}):
            for path in (first["links"]["self"], first["links"]["result"], first["links"]["events"]):
                async with http.get(base + path, headers=other) as r:
                    await _problem(r, 404, "not-found")
            async with http.delete(base + first["links"]["self"], headers=other) as r:
                await _problem(r, 404, "not-found")
        async with http.get(base + "/v1/stylizations", headers={"Authorization": f"Bearer {bob}"}) as r:
            assert (await _json(r))["items"] == []
        # a slow job cancelled while it runs: DELETE, then it is gone
        slow = await _slow_job_running(http, base, as_alice)
        async with http.delete(base + slow["links"]["cancel"], headers=as_alice) as r:
            assert r.status == 204
        async with http.get(base + slow["links"]["self"], headers=as_alice) as r:
            await _problem(r, 404, "not-found")
        async with http.get(base + "/v1/presets", headers={"Authorization": "Bearer sk_forged"}) as r:
            await _problem(r, 401, "unauthorized")
    # deleting a caller's data (/privacy, for a Mini App user) takes their uploads and results out of the database
    from bot_helpers import rows

    from bot import store
    from bot.db import create_engine, session_factory

    owner = rows(settings, f"SELECT user_id FROM jobs WHERE public_id = '{first['id']}'")[0][0]
    assert rows(settings, "SELECT count(*) FROM blobs")[0][0] > 0
    engine = create_engine(settings.database_url)
    async with session_factory(engine)() as session:
        await store.delete_user_data(session, owner)
        await session.commit()
    await engine.dispose()
    assert rows(settings, "SELECT count(*) FROM blobs") == [(0,)]


async def test_bad_input_is_a_problem_never_a_server_error(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, api_requests_per_minute=25)
    async with running_api(settings) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/v1/presets") as r:
            name = (await _json(r))["items"][0]["name"]
        url = base + "/v1/stylizations"
        tiny = png(1, 1)
        cases = [
            (form({"content": b"just some text\n"}, preset=name), 415, "unsupported-media"),
            (form({"content": tiny}, preset=name), 422, "unprocessable"),
            (form({"content": picture(64, 64)}, preset="no_such_style"), 422, "unprocessable"),
            (form({"content": picture(64, 64)}, preset=name, strength=7), 422, "unprocessable"),
            (form({"content": picture(64, 64)}), 422, "unprocessable"),
            (form({}, preset=name), 400, "malformed"),
            (b"not multipart", 400, "malformed"),
        ]
        for data, status, kind in cases:
            async with http.post(url, data=data) as r:
                await _problem(r, status, kind)
        big = form({"content": os.urandom(21 * 2**20)}, preset=name)
        async with http.post(url, data=big) as r:
            await _problem(r, 413, "too-large")
        async with http.get(base + "/v1/stylizations/" + "0" * 32) as r:
            await _problem(r, 404, "not-found")
        async with http.get(base + "/v1/nothing-here") as r:
            await _problem(r, 404, "not-found")
        # the MAX contract: a JPEG of the input's size; something else than a picture is a 400
        async with http.get(base + "/model/metadata") as r:
            meta = await _json(r)
            assert {"id", "name", "description", "type", "license", "source"} <= set(meta)
        image = picture(120, 90, seed=8)
        async with http.post(base + f"/model/predict?model={name}", data=form({"image": image})) as r:
            assert r.status == 200 and r.content_type == "image/jpeg"
            assert Image.open(io.BytesIO(await r.read())).size == (120, 90)
        async with http.post(base + f"/model/predict?model={name}", data=form({"image": b"hello"})) as r:
            await _problem(r, 400, "malformed")
        # past the requests per minute: 429 with Retry-After and the RateLimit headers
        statuses = []
        for _ in range(30):
            async with http.get(base + "/v1/methods") as r:
                statuses.append(r.status)
                if r.status == 429:
                    problem = await _problem(r, 429, "rate-limited")
                    assert int(r.headers["Retry-After"]) > 0 and r.headers["RateLimit"].startswith('"requests";r=0')
                    assert problem["detail"]
                    break
        assert 429 in statuses
    # the OpenAPI document is valid OpenAPI 3.1
    from openapi_spec_validator import validate

    from bot.http.openapi import document

    validate(document())


async def test_the_same_picture_at_the_same_instant_is_no_server_error(tmp_path: Path) -> None:
    """One caller sending one file in two requests at once: both look for the input row, find none and insert it;
    the loser of that race must use the winner's row (it was an IntegrityError, a 500). Driven below HTTP so the
    two requests meet at the database every time, then once more through the server."""
    from bot.db import create_engine, migrate, session_factory
    from bot.http.uploads import Upload, inspect, store_input
    from bot.services import Services

    settings = api_settings(tmp_path, api_jobs_at_once=8)
    engine = create_engine(settings.database_url)
    await migrate(engine)
    services = Services(settings=settings, engine=engine, sessions=session_factory(engine))
    upload = Upload("content", "photo.jpg", picture(80, 64, seed=21))
    found = await inspect(upload, services)
    first, second = await asyncio.gather(*(store_input(services, -7, "twins", upload, found) for _ in range(2)))
    assert first.id == second.id
    await engine.dispose()

    auth = {"Authorization": f"Bearer {_apikey(settings, 'twins')}"}
    async with running_api(settings) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/v1/presets") as r:
            name = (await _json(r))["items"][0]["name"]

        async def post() -> int:
            async with http.post(base + "/v1/stylizations", headers=auth,
                                 data=form({"content": upload.data}, preset=name)) as r:
                return r.status

        assert await asyncio.gather(*(post() for _ in range(6))) == [202] * 6


async def test_each_key_has_its_own_limits_and_queue_share(tmp_path: Path) -> None:
    """A key's own limits (``apikey create NAME rpm=... jobs=... share=...``) hold for it and nobody else: its
    requests per minute, and its share of MAX_QUEUE while a worker is busy."""
    settings = api_settings(tmp_path, workers=1, gatys_steps=400, max_queue=4, api_requests_per_minute=100)
    small = {"Authorization": f"Bearer {_apikey(settings, 'small', 'rpm=3', 'jobs=8', 'share=0.5')}"}
    big = {"Authorization": f"Bearer {_apikey(settings, 'big')}"}
    async with running_api(settings) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/v1/presets", headers=big) as r:
            name = (await _json(r))["items"][0]["name"]
            assert r.headers["RateLimit-Policy"] == '"requests";q=100;w=60'
        # the one worker busy with a slow job of the big key ...
        slow = await _slow_job_running(http, base, big)
        # ... so the small key's jobs wait: two (half of MAX_QUEUE 4) may, the third is over its share
        statuses = []
        for seed in range(3):
            async with http.post(base + "/v1/stylizations", headers=small,
                                 data=form({"content": picture(64, 64, seed=seed)}, preset=name)) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert "share of the queue" in (await _json(r))["detail"]
        assert statuses == [202, 202, 429]
        async with http.get(base + "/v1/methods", headers=small) as r:  # its 4th request this minute: rpm=3
            await _problem(r, 429, "rate-limited")
            assert r.headers["RateLimit-Policy"] == '"requests";q=3;w=60'
        async with http.get(base + "/v1/methods", headers=big) as r:
            assert r.status == 200
        async with http.delete(base + slow["links"]["cancel"], headers=big) as r:
            assert r.status == 204


async def test_forwarded_addresses_count_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    """Anonymous callers are counted by address. X-Forwarded-For is believed only from TRUSTED_PROXIES, read from
    the right, so a client cannot pick its own address by prepending one."""

    async def remaining(base: str, http: aiohttp.ClientSession, forwarded: str) -> int:
        async with http.get(base + "/v1/methods", headers={"X-Forwarded-For": forwarded}) as r:
            assert r.status == 200
            return int(r.headers["RateLimit"].split("r=")[1].split(";")[0])

    behind = api_settings(tmp_path / "behind", api_requests_per_minute=10, trusted_proxies="127.0.0.1, 10.0.0.0/8")
    async with running_api(behind) as base, aiohttp.ClientSession() as http:
        assert await remaining(base, http, "203.0.113.1") == 9
        assert await remaining(base, http, "203.0.113.2") == 9  # another client behind the same proxy
        assert await remaining(base, http, "198.51.100.7, 203.0.113.1") == 8  # a forged first hop changes nothing
        assert await remaining(base, http, "203.0.113.2, 10.1.2.3") == 8  # an inner proxy is skipped
    exposed = api_settings(tmp_path / "exposed", api_requests_per_minute=10)
    async with running_api(exposed) as base, aiohttp.ClientSession() as http:
        assert await remaining(base, http, "203.0.113.1") == 9
        assert await remaining(base, http, "203.0.113.2") == 8  # no trusted proxy: the header is ignored


async def test_a_slow_upload_holds_a_slot_and_an_oversized_one_never_waits(tmp_path: Path) -> None:
    """Bodies in memory are bounded (UPLOADS_AT_ONCE): while a slow client holds the only slot, a 60 MB upload is
    refused from its headers at once (413), and the slow one still gets its job."""
    settings = api_settings(tmp_path, uploads_at_once=1)
    async with running_api(settings) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/v1/presets") as r:
            name = (await _json(r))["items"][0]["name"]
        body = form({"content": picture(96, 64, seed=9)}, preset=name)
        payload = body()  # the multipart writer: its bytes, and its Content-Type with the boundary
        chunks = io.BytesIO()

        class Sink:
            async def write(self, data: bytes) -> None:
                chunks.write(data)

        await payload.write(Sink())
        raw, release = chunks.getvalue(), asyncio.Event()

        async def trickle():  # half the body, then nothing until released
            yield raw[: len(raw) // 2]
            await release.wait()
            yield raw[len(raw) // 2:]

        slow = asyncio.create_task(http.post(base + "/v1/stylizations", data=trickle(),
                                             headers={"Content-Type": payload.content_type}))
        await asyncio.sleep(1.0)  # it holds the slot now
        big = form({"content": os.urandom(60 * 2**20)}, preset=name)
        started = asyncio.get_running_loop().time()
        async with http.post(base + "/v1/stylizations", data=big) as r:
            await _problem(r, 413, "too-large")
        assert asyncio.get_running_loop().time() - started < 10 and not slow.done()
        release.set()
        async with await slow as r:
            assert r.status == 202, await r.text()


async def test_openapi_docs_and_health(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    async with running_api(settings) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/openapi.json") as r:
            spec = await _json(r)
            assert spec["openapi"].startswith("3.1") and "/v1/stylizations" in spec["paths"]
        async with http.get(base + "/docs") as r:
            page = await r.text()
            assert r.status == 200 and "swagger-ui-bundle.js" in page and "http" not in page.split("<body>")[1]
        async with http.get(base + "/docs/static/swagger-ui-bundle.js") as r:
            assert r.status == 200 and len(await r.read()) > 100_000
        for path in ("/healthz", "/readyz"):
            async with http.get(base + path) as r:
                assert r.status == 200 and (await _json(r))["status"] == "ok"


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    """The API fuzzed from its own /openapi.json: no 5xx, every answer as the schema says."""
    settings = api_settings(tmp_path, api_requests_per_minute=100000)
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "DATABASE_URL")}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR=str(settings.data_dir), HTTP_LISTEN=settings.http_listen,
               OUTPUT_SIZE="64", MAX_OUTPUT_SIZE="128", GATYS_STEPS="2", LOG_LEVEL="WARNING")
    server = subprocess.Popen([sys.executable, "-m", "bot"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        assert "Stylebot HTTP service: http://" in line, line
        base = f"http://{settings.http_listen}"
        proc = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json", "--url", base,
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
             "response_schema_conformance", "--max-examples", "25", "--phases", "examples,fuzzing",
             "--exclude-path-regex", "/events$", "--request-timeout", "70", "--no-color"],
            env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(30)
