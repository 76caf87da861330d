"""The fake Bot API server against the real python-telegram-bot client: wire format, limits, polling.

The e2e tests of the bot trust this server to behave like Telegram; these tests hold it to that with a real
``telegram.Bot`` and a tiny real ``Application``, so a fake that drifted from PTB's expectations fails here
rather than as a puzzling bot failure.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from PIL import Image
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from tests.fake_telegram import MAX_DOWNLOAD_BYTES, NOT_MODIFIED, FakeTelegram

pytestmark = pytest.mark.timeout(60)

USER = 4242


def bad(description: str) -> pytest.RaisesExc[BadRequest]:
    """Expect a BadRequest; PTB re-capitalises Telegram's descriptions, so match case-insensitively."""
    return pytest.raises(BadRequest, match=re.compile(re.escape(description), re.IGNORECASE))


def jpeg(width: int = 120, height: int = 80, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG")
    return buf.getvalue()


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        server.user(USER)
        yield server


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as client:
        yield client


async def test_get_me_and_commands(tg: FakeTelegram, bot: Bot) -> None:
    assert bot.username == tg.bot_user["username"]  # Bot.initialize() called getMe
    await bot.set_my_commands([("start", "Start"), ("help", "Help")])
    assert [(c.command, c.description) for c in await bot.get_my_commands()] == [("start", "Start"), ("help", "Help")]
    with bad("BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad-Name", "x")])


async def test_unknown_method_and_wrong_token(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(EndPointNotFound):  # PTB's name for the 404 of an unknown method
        await bot.do_api_request("someUnknownMethod", {"name": "x"})
    assert tg.calls[-1].method == "someUnknownMethod" and tg.calls[-1].status == 404
    with pytest.raises(InvalidToken):  # 401 for a token the server does not know
        async with Bot("1:WRONG", base_url=tg.base_url):
            pass


async def test_send_message_limits_and_markup(tg: FakeTelegram, bot: Bot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go:1")]])
    msg = await bot.send_message(USER, "hello", reply_markup=markup)
    assert msg.text == "hello" and msg.chat.id == USER and msg.from_user.id == bot.id
    assert msg.reply_markup == markup
    second = await bot.send_message(USER, "x" * 4096)
    assert second.message_id == msg.message_id + 1
    assert [m["text"] for m in tg.messages(USER)] == ["hello", "x" * 4096]

    with bad("message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with bad("message is too long"):
        await bot.send_message(USER, "😀" * 2049)  # counted in UTF-16 units like Telegram
    with bad("text is empty"):
        await bot.send_message(USER, "   ")
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("B", callback_data="é" * 33)]])  # 66 bytes
    with bad("BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "hi", reply_markup=too_long)
    with bad("chat not found"):
        await bot.send_message(999, "who?")
    assert len(tg.messages(USER)) == 2  # failed sends leave no trace


async def test_parse_modes(tg: FakeTelegram, bot: Bot) -> None:
    msg = await bot.send_message(USER, "<b>bold</b> &lt;3 &amp; more", parse_mode=ParseMode.HTML)
    assert msg.text == "bold <3 & more"
    with bad("can't parse entities"):
        await bot.send_message(USER, "1 < 2", parse_mode=ParseMode.HTML)
    with bad("Can't find end tag"):
        await bot.send_message(USER, "<i>open", parse_mode=ParseMode.HTML)
    msg = await bot.send_message(USER, r"*done* in 1\.5 s", parse_mode=ParseMode.MARKDOWN_V2)
    assert msg.text == "done in 1.5 s"
    with bad("reserved"):
        await bot.send_message(USER, "done in 1.5 s", parse_mode=ParseMode.MARKDOWN_V2)


async def test_edits_and_not_modified(tg: FakeTelegram, bot: Bot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Cancel", callback_data="cancel")]])
    msg = await bot.send_message(USER, "working 10%", reply_markup=markup)
    edited = await bot.edit_message_text("working 50%", USER, msg.message_id, reply_markup=markup)
    assert edited.text == "working 50%" and edited.edit_date is not None
    with bad("message is not modified") as err:
        await bot.edit_message_text("working 50%", USER, msg.message_id, reply_markup=markup)
    assert NOT_MODIFIED.lower().endswith(str(err.value).lower())  # PTB re-capitalises descriptions
    # Same text without the keyboard is a change: Telegram removes the keyboard.
    await bot.edit_message_text("working 50%", USER, msg.message_id)
    assert "reply_markup" not in tg.last_message(USER)
    await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=markup)
    assert tg.last_message(USER)["reply_markup"]["inline_keyboard"][0][0]["text"] == "Cancel"
    with bad("message to edit not found"):
        await bot.edit_message_text("x", USER, 9999)
    user_msg = tg.user_sends_text(USER, "mine")["message"]
    with bad("can't be edited"):
        await bot.edit_message_text("x", USER, user_msg["message_id"])
    assert await bot.delete_message(USER, msg.message_id)
    assert tg.last_message(USER) is None
    with bad("message to delete not found"):
        await bot.delete_message(USER, msg.message_id)


async def test_photo_round_trip_and_limits(tg: FakeTelegram, bot: Bot) -> None:
    data = jpeg(1000, 600)
    sent = await bot.send_photo(USER, data, caption="result", reply_markup=InlineKeyboardMarkup(
        [[InlineKeyboardButton("Again", callback_data="again")]]))
    assert sent.caption == "result"
    sizes = sent.photo
    assert [max(p.width, p.height) for p in sizes] == [90, 320, 800, 1000]  # largest = the original
    assert tg.sent_photos(USER) == [data]
    # Re-sending by file_id works and references the same picture.
    again = await bot.send_photo(USER, sizes[-1].file_id)
    assert again.photo[-1].file_unique_id == sizes[-1].file_unique_id
    assert tg.sent_photos(USER)[-1] == data
    # Download through getFile + the file URL.
    file = await bot.get_file(sizes[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == data
    await bot.edit_message_caption(USER, sent.message_id, caption="new caption")
    assert tg.messages(USER)[0]["caption"] == "new caption"

    with bad("PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(USER, png(2100, 100))  # ratio 21
    with bad("PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(USER, png(6000, 4001))
    with bad("IMAGE_PROCESS_FAILED"):
        await bot.send_photo(USER, b"not a picture at all")
    with bad("caption is too long"):
        await bot.send_photo(USER, data, caption="c" * 1025)
    with bad("wrong file identifier"):
        await bot.send_photo(USER, "AgACnonexistent")


async def test_edit_media_replies_and_callback_answers(tg: FakeTelegram, bot: Bot) -> None:
    first = await bot.send_photo(USER, jpeg(color=(250, 0, 0)), caption="preview")
    await bot.edit_message_media(InputMediaPhoto(jpeg(color=(0, 0, 250)), caption="final"), USER, first.message_id)
    assert tg.last_message(USER)["caption"] == "final"
    assert Image.open(io.BytesIO(tg.sent_photos(USER)[-1])).convert("RGB").getpixel((3, 3))[2] > 150
    with bad("message to be replied not found"):
        await bot.send_message(USER, "late", reply_to_message_id=12345)
    reply = await bot.send_message(USER, "re", reply_to_message_id=first.message_id)
    assert reply.reply_to_message.caption == "final"

    with_url = InlineKeyboardMarkup([[InlineKeyboardButton("Docs", url="https://example.org")],
                                     [InlineKeyboardButton("Ok", callback_data="ok")]])
    await bot.send_message(USER, "pick", reply_markup=with_url)
    with pytest.raises(LookupError, match="not a callback button"):
        await tg.press_button(USER, "Docs")
    query_id = (await tg.press_button(USER, "Ok"))["callback_query"]["id"]
    assert await bot.answer_callback_query(query_id, text="done")
    assert tg.callback_answers[query_id]["text"] == "done"
    with bad("query is too old"):  # Telegram accepts one answer per query
        await bot.answer_callback_query(query_id)
    with bad("Unmatched end tag"):
        await bot.send_message(USER, "<b>x</i>", parse_mode=ParseMode.HTML)


async def test_document_and_media_group(tg: FakeTelegram, bot: Bot) -> None:
    doc = await bot.send_document(USER, png(64, 64), filename="result.png", caption="full size")
    assert doc.document.file_name == "result.png" and doc.document.mime_type == "image/png"
    assert tg.sent_documents(USER) == [("result.png", png(64, 64))]
    with bad("can't use file of type Photo"):
        photo = await bot.send_photo(USER, jpeg())
        await bot.send_document(USER, photo.photo[-1].file_id)

    group = await bot.send_media_group(USER, [InputMediaPhoto(jpeg(color=(0, 0, 200)), caption="a"),
                                              InputMediaPhoto(jpeg(color=(0, 200, 0)))])
    assert len(group) == 2 and group[0].media_group_id == group[1].media_group_id
    decoded = [Image.open(io.BytesIO(b)).convert("RGB").getpixel((5, 5)) for b in tg.sent_photos(USER)[-2:]]
    assert decoded[0][2] > 150 and decoded[1][1] > 150
    with bad("wrong number of media"):
        await bot.send_media_group(USER, [InputMediaPhoto(jpeg())])


async def test_user_files_and_big_file(tg: FakeTelegram, bot: Bot) -> None:
    update = Update.de_json(tg.user_sends_photo(USER, jpeg(400, 300), caption="style me"), bot)
    assert update.message.caption == "style me"
    assert max(update.message.photo[-1].width, update.message.photo[-1].height) == 400
    file = await bot.get_file(update.message.photo[-1].file_id)
    with Image.open(io.BytesIO(bytes(await file.download_as_bytearray()))) as img:
        assert img.size == (400, 300)

    huge = Update.de_json(tg.user_sends_document(USER, b"tiny", "huge.png", file_size=MAX_DOWNLOAD_BYTES + 1), bot)
    assert huge.message.document.file_size == MAX_DOWNLOAD_BYTES + 1
    with bad("file is too big"):
        await bot.get_file(huge.message.document.file_id)

    for sent in (tg.user_sends_sticker(USER), tg.user_sends_voice(USER), tg.user_sends_video(USER),
                 tg.user_sends_animation(USER)):
        message = Update.de_json(sent, bot).message
        assert message.sticker or message.voice or message.video or message.animation

    reply = Update.de_json(tg.user_replies(USER, update.message.message_id, "again"), bot).message
    assert reply.reply_to_message.photo[-1].file_id == update.message.photo[-1].file_id


async def test_long_poll_offsets(tg: FakeTelegram, bot: Bot) -> None:
    assert await bot.get_updates(timeout=0) == ()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.05)
    assert not poll.done()
    loop = asyncio.get_running_loop()
    started = loop.time()
    tg.user_sends_text(USER, "/start now")
    updates = await poll
    assert loop.time() - started < 1.0  # answered as soon as the update was queued
    assert updates[0].message.text == "/start now"
    assert updates[0].message.entities[0].type == "bot_command" and updates[0].message.entities[0].length == 6
    tg.user_sends_text(USER, "second")
    again = await bot.get_updates(timeout=0)
    assert [u.message.text for u in again] == ["/start now", "second"]  # not confirmed yet
    after = await bot.get_updates(offset=again[0].update_id + 1, timeout=0)
    assert [u.message.text for u in after] == ["second"]
    assert await bot.get_updates(offset=after[-1].update_id + 1, timeout=0) == ()
    tg.user_sends_text(USER, "ignored kind")
    assert await bot.get_updates(timeout=0, allowed_updates=["callback_query"]) == ()


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # retry_after int -> timedelta
async def test_faults(tg: FakeTelegram, bot: Bot) -> None:
    tg.flood("sendMessage", times=1, retry_after=3)
    with pytest.raises(RetryAfter) as err:
        await bot.send_message(USER, "hi")
    retry_after = err.value.retry_after
    assert (retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after) == 3
    assert (await bot.send_message(USER, "hi")).text == "hi"
    tg.fail("sendChatAction", 502, "Bad Gateway")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_chat_action(USER, ChatAction.TYPING)
    assert await bot.send_chat_action(USER, ChatAction.UPLOAD_PHOTO)
    tg.block(USER)
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(USER, "hi")


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Blue 🔵", callback_data="color:blue"),
                                    InlineKeyboardButton("Red", callback_data="color:red")]])
    await update.message.reply_text(f"echo: {update.message.text}", reply_markup=markup, do_quote=True)


async def _pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer("ok")
    await query.edit_message_text(f"chose {query.data}")


async def test_real_application_polls_echoes_and_handles_buttons(tg: FakeTelegram) -> None:
    app = Application.builder().token(tg.token).base_url(tg.base_url).base_file_url(tg.base_file_url).build()
    app.add_handler(MessageHandler(filters.TEXT, _echo))
    app.add_handler(CallbackQueryHandler(_pressed))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        sent = await tg.user_sends_text(USER, "hello")  # awaiting the helpers is allowed too
        call = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == USER, timeout=10)
        assert call.params["text"] == "echo: hello"
        assert call.params["reply_parameters"]["message_id"] == sent["message"]["message_id"]
        assert tg.last_message(USER)["reply_to_message"]["text"] == "hello"

        mark = tg.mark()
        await tg.press_button(USER, "Blue")
        answer = await tg.wait_for("answerCallbackQuery", timeout=10, since=mark)
        assert answer.params["text"] == "ok" and tg.callback_answers
        await tg.wait_for("editMessageText", timeout=10)
        assert tg.last_message(USER)["text"] == "chose color:blue"
        with pytest.raises(LookupError):
            tg.user_presses(USER, tg.last_message(USER)["message_id"], "color:red")  # keyboard is gone
        with pytest.raises(AssertionError, match="no \\['sendPhoto'\\] call"):
            await tg.wait_for("sendPhoto", timeout=0.2)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
