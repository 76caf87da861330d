"""The web studio in a real browser (Debian's Chromium driven by Playwright; nothing downloaded) against the real
service on 127.0.0.1, and the Telegram Mini App's initData check. Failures keep a screenshot in the test's
temporary folder."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from api_helpers import api_settings, running_api
from bot_helpers import UserChat, call_params, ensure_presets, make_settings, picture, rows, running_bot
from clips import pan_frames, write_clip
from PIL import Image
from playwright.async_api import Page, async_playwright, expect
from postgres import free_port

pytestmark = pytest.mark.timeout(300)
CHROMIUM = "/usr/bin/chromium"
TOKEN = "123456:studio-test-token"


@contextlib.asynccontextmanager
async def browser_page(tmp_path: Path, **context: object) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        ctx = await browser.new_context(**context)  # type: ignore[arg-type]
        page = await ctx.new_page()
        page.set_default_timeout(90_000)
        try:
            yield page
        except BaseException:
            with contextlib.suppress(Exception):
                await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            await browser.close()


def _file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


async def _stylize(page: Page) -> None:
    """Click Stylize and wait for a new result on screen (not the one shown before)."""
    before = await page.locator("#result").get_attribute("src")
    await page.get_by_role("button", name="Stylize").click()
    await expect(page.get_by_role("img", name="Result")).to_be_visible(timeout=120_000)
    await expect(page.locator("#result")).not_to_have_attribute("src", before or "", timeout=120_000)


async def test_photo_and_preset_to_result_compare_and_download(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path)) as base, browser_page(tmp_path) as page:
        await page.goto(base + "/")
        await page.get_by_label("Photo").set_input_files(_file(tmp_path, "p.jpg", picture(160, 120, seed=1)))
        await expect(page.locator("#preview")).to_be_visible()
        for player in ("#clip-preview", "#live"):  # a photo shows no empty video players (CSS once beat `hidden`)
            await expect(page.locator(player)).to_be_hidden()
        style = page.get_by_role("radiogroup", name="Style")
        await style.get_by_role("radio").first.check()
        await _stylize(page)
        result = page.get_by_role("img", name="Result")
        size = await result.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert size == [64, 48]
        await page.get_by_role("slider", name="Compare").fill("20")
        clip = await page.locator("#after-clip").evaluate("e => e.style.clipPath")
        assert clip == "inset(0px 0px 0px 20%)"
        async with page.expect_download() as download:
            await page.get_by_role("link", name="Download").click()
        saved = await (await download.value).path()
        assert Image.open(saved).size == (64, 48)
        await expect(page.get_by_role("progressbar")).to_have_attribute("value", "100")
        # the share link shows the result to anyone, with a way to make one's own
        await page.get_by_role("button", name="Share link").click()
        url = await page.get_by_role("textbox", name="Share link").input_value()
        assert "/s/" in url
        other = await page.context.browser.new_page()  # type: ignore[union-attr]
        await other.goto(url)
        await expect(other.get_by_role("link", name="Make your own")).to_be_visible()
        assert await other.locator("img").evaluate("img => img.naturalWidth") == 64
        # this browser's recent results
        await page.reload()
        await expect(page.locator("#recent img")).to_have_count(1)


async def test_own_style_picture_and_two_styles_mixed(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path)) as base, browser_page(tmp_path) as page:
        await page.goto(base + "/")
        await page.get_by_label("Photo").set_input_files(_file(tmp_path, "p.png", picture(128, 96, seed=2, fmt="PNG")))
        group = page.get_by_role("radiogroup", name="Style")
        await group.get_by_role("radio").last.check()  # any picture
        await page.get_by_label("Style picture").set_input_files(_file(tmp_path, "s.jpg", picture(96, 96, seed=7)))
        await page.get_by_role("slider", name="Strength").fill("70")
        await _stylize(page)
        # two presets mixed with a ratio
        await group.get_by_role("radio").nth(1).check()
        await page.get_by_label("Mix with").select_option(index=3)
        await page.get_by_role("slider", name="Mix", exact=True).fill("30")
        await _stylize(page)
        await expect(page.get_by_role("status")).to_have_text("Done.")
    presets = rows(api_settings(tmp_path), "SELECT params FROM jobs ORDER BY id")
    assert len(presets) == 2 and '"strength": 0.7' in presets[0][0] and "share" in presets[1][0]


async def test_russian_page_on_a_phone(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path)) as base, browser_page(
            tmp_path, locale="ru-RU", extra_http_headers={"Accept-Language": "ru-RU,ru;q=0.9"},
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True) as page:
        await page.goto(base + "/")
        await page.get_by_label("Фото").set_input_files(_file(tmp_path, "p.jpg", picture(200, 150, seed=3)))
        group = page.get_by_role("radiogroup", name="Стиль")
        await group.get_by_role("radio").last.check()
        await expect(page.get_by_label("Картинка стиля")).to_be_visible()
        await group.get_by_role("radio").first.check()
        await page.get_by_role("button", name="Стилизовать").click()
        await expect(page.get_by_role("img", name="Результат")).to_be_visible(timeout=120_000)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width  # no horizontal scrolling
        await page.get_by_role("button", name="English").click()
        await expect(page.get_by_role("button", name="Stylize")).to_be_visible()


async def test_a_clip_and_cancel(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", pan_frames(None, 6, (64, 48), 2), fps=6, audio=False)
    settings = api_settings(tmp_path, gatys_steps=400, workers=1)
    async with running_api(settings) as base, browser_page(tmp_path) as page:
        await page.goto(base + "/")
        await page.get_by_label("Photo").set_input_files(str(clip))
        await page.get_by_role("radiogroup", name="Style").get_by_role("radio").first.check()
        await page.get_by_role("button", name="Stylize").click()
        await expect(page.locator("#result-clip")).to_be_visible(timeout=120_000)
        assert await page.locator("#result-clip").evaluate("v => v.src.startsWith('blob:')")
        # a slow job, cancelled
        await page.get_by_label("Photo").set_input_files(_file(tmp_path, "p.jpg", picture(96, 96, seed=5)))
        await page.get_by_role("radiogroup", name="Style").get_by_role("radio").last.check()
        await page.get_by_label("Style picture").set_input_files(_file(tmp_path, "s.jpg", picture(64, 64, seed=6)))
        await page.get_by_label("High quality (slow)").check()
        await page.get_by_role("button", name="Stylize").click()
        await expect(page.get_by_role("status")).to_contain_text("Working", timeout=60_000)
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.get_by_role("status")).to_have_text("Cancelled.")
    assert rows(settings, "SELECT count(*) FROM jobs WHERE method = 'gatys'") == [(0,)]  # cancelled and deleted


def init_data(token: str, user_id: int = 7001, auth_date: int | None = None) -> str:
    """Telegram's initData for ``user_id``, signed as Telegram signs it for the bot ``token``."""
    fields = {"auth_date": str(auth_date or int(time.time())), "query_id": "AAH",
              "user": json.dumps({"id": user_id, "first_name": "Ann", "language_code": "en"})}
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    return urlencode({**fields, "hash": hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()})


async def test_mini_app_init_data(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, bot_token=TOKEN)
    async with running_api(settings) as base:
        async with aiohttp.ClientSession() as http:
            cases = {"valid": (init_data(TOKEN), 200), "forged": (init_data(TOKEN).replace("Ann", "Bob"), 401),
                     "stale": (init_data(TOKEN, auth_date=int(time.time()) - 2 * 86400), 401),
                     "another bot's": (init_data("999:another-bot"), 401)}
            for name, (data, status) in cases.items():
                async with http.get(base + "/v1/stylizations", headers={"Authorization": f"tma {data}"}) as r:
                    assert r.status == status, name
        # in the browser, opened by Telegram with initData in the launch fragment: the jobs are the user's
        async with browser_page(tmp_path) as page:
            theme = json.dumps({"bg_color": "#222222", "text_color": "#eeeeee", "button_color": "#ff8800"})
            await page.goto(base + "/#" + urlencode({"tgWebAppData": init_data(TOKEN, 7002),
                                                     "tgWebAppThemeParams": theme}))
            await expect(page.get_by_role("button", name="Send to chat")).to_be_hidden()  # until there is a result
            assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(34, 34, 34)"
            await page.get_by_label("Photo").set_input_files(_file(tmp_path, "p.jpg", picture(96, 64, seed=9)))
            await page.get_by_role("radiogroup", name="Style").get_by_role("radio").first.check()
            await _stylize(page)
            await expect(page.get_by_role("button", name="Send to chat")).to_be_visible()
    assert rows(settings, "SELECT user_id, origin FROM jobs") == [(7002, "api")]


async def test_the_bot_serves_the_studio_and_its_mini_app_users(tg, tmp_path: Path) -> None:
    """``python -m bot`` with a token: polling and the HTTP front end together; the bot offers the studio as a Mini
    App (menu button, a button under the style menu), initData signed with this bot's token is its user, and
    "Send to chat" puts the result into that user's chat."""
    port = free_port()
    settings = make_settings(tg, tmp_path, http_listen=f"127.0.0.1:{port}", studio_url="https://studio.example/")
    ensure_presets(settings)
    async with running_bot(settings):
        chat = UserChat(tg, 7003)
        await chat.photo(picture(96, 64, seed=1))
        menu, _ = await chat.wait_button("ps:")
        markup = call_params(menu)["reply_markup"]
        markup = json.loads(markup) if isinstance(markup, str) else markup
        assert any(b.get("web_app", {}).get("url") == "https://studio.example/"
                   for row in markup["inline_keyboard"] for b in row)
        await tg.wait_for("setChatMenuButton")
        assert tg.menu_buttons[""]["web_app"]["url"] == "https://studio.example/"
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"tma {init_data(tg.token, 7003)}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/v1/stylizations", headers={"Authorization": f"tma {init_data('1:x')}"}) as r:
                assert r.status == 401
            async with http.get(base + "/v1/presets", headers=auth) as r:
                name = (await r.json())["items"][0]["name"]
            data = aiohttp.FormData()
            data.add_field("content", picture(96, 64, seed=2), filename="p.jpg")
            data.add_field("preset", name)
            async with http.post(base + "/v1/stylizations", data=data, headers={**auth, "Prefer": "wait=60"}) as r:
                job = await r.json()
                assert r.status == 200 and job["status"] == "succeeded", job
            async with http.post(base + f"/v1/stylizations/{job['id']}/send", headers=auth) as r:
                assert r.status == 200
        sent = await chat.wait("sendDocument")
        assert call_params(sent)["chat_id"] in (7003, "7003")
    assert rows(settings, "SELECT user_id, origin FROM jobs WHERE origin = 'api'") == [(7003, "api")]
