"""A fake Telegram Bot API server for end-to-end tests: the real bot, polling over real HTTP, offline.

Why a server and not mocks: the bot is a python-telegram-bot ``Application``; what breaks in production is
the wire (multipart uploads, JSON-encoded form fields, long polling, error payloads turned into
``BadRequest``/``RetryAfter``) and Telegram's limits (4096-character texts, 64-byte callback data, photo
dimensions, 20 MB downloads, "message is not modified"). This server speaks the Bot API over HTTP on
127.0.0.1 and enforces those limits with Telegram's own error descriptions, so a bot bug fails in CI the way
it would fail in front of a user. It keeps the state a test wants to look at: every call, every bot message
as it is now (edits applied), every uploaded file (decodable with PIL, re-usable by ``file_id``).

Example (pytest-asyncio, ``asyncio_mode=auto``)::

    async def test_echo(tmp_path):
        async with FakeTelegram() as tg:
            app = (Application.builder().token(tg.token).base_url(tg.base_url)
                   .base_file_url(tg.base_file_url).build())
            ...  # add handlers, app.initialize(), app.start(), app.updater.start_polling(poll_interval=0)
            tg.user_sends_text(42, "/start")            # user ids double as private chat ids
            call = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == 42)
            tg.user_sends_photo(42, jpeg_bytes, caption="make it blue")
            await tg.wait_for("sendPhoto")
            picture = Image.open(io.BytesIO(tg.sent_photos(42)[-1]))
            await tg.press_button(42, "Starry")         # inline button whose text starts with "Starry"
            assert tg.last_message(42)["text"].startswith("Done")

Test-facing API (all of it runs in the test's event loop; the ``user_*`` helpers are plain functions that
queue an update and return it, and may also be awaited, whichever reads better in the test):

- ``FakeTelegram()`` as ``async with`` or ``await start()`` / ``await stop()``; ``token``, ``base_url``
  (``http://127.0.0.1:PORT/bot``), ``base_file_url`` (``http://127.0.0.1:PORT/file/bot``), ``bot_user``.
- Users: ``user(user_id, **fields)``, ``user_sends_text``, ``user_sends_photo`` (several PhotoSizes like
  Telegram, largest = original), ``user_sends_document``, ``user_sends_sticker``, ``user_sends_animation``,
  ``user_sends_video``, ``user_sends_voice``, ``user_replies``, ``user_presses`` (validates the button),
  ``press_button`` (by text prefix). ``file_size=`` on the media helpers fakes a huge file (e.g. 25 MB, so
  ``getFile`` answers "file is too big") without storing it.
- Observing: ``calls`` (:class:`Call`: method, params, files, time, ok, error, result; ``getUpdates`` is
  not recorded), ``await wait_for(method, predicate, timeout, since=)``, ``mark()``, ``await wait_until(cond)``,
  ``messages(chat_id)`` (bot messages now, edits applied, deletions removed), ``last_message``,
  ``sent_photos`` (bytes), ``sent_documents`` ((file_name, bytes)), ``file_bytes(file_id)``, ``buttons``,
  ``find_button``, ``callback_answers``, ``commands``.
- Chats exist once their user wrote (or ``user(id)`` was called); sends to any other chat id fail with
  "chat not found", as on Telegram. ``user_presses`` raises LookupError for a button that is not there.
- Faults: ``flood(method, times, retry_after)`` (429 → ``RetryAfter``), ``fail(method, status, description,
  times)`` (e.g. 502 → ``NetworkError``), ``block(user_id)`` (403 → ``Forbidden``).
- Telegram's overall limit: ``limit_rate(per_second=30)`` answers 429 (retry_after 1) to any sending or
  editing call beyond that many in the last second, across every client; ``rate_limited`` counts them.
- Webhook push mode: ``push_webhooks(replicas)`` POSTs queued updates to the URL given in ``setWebhook``
  (with its ``secret_token``), round-robin over ``replicas`` (``http://host:port`` of the load balancer's
  backends; the webhook URL's path is kept) like Telegram behind a load balancer: one update per user in
  flight (a user's updates stay in order), an update not answered 200 (refused, timed out, connection
  dropped by a killed replica) is delivered again, to the next replica. ``deliveries`` records
  (update_id, url, status) of every attempt; ``getUpdates`` answers 409 Conflict while a webhook is set.

Error descriptions are Telegram's where they are known and stable ("message is not modified: ...",
"BUTTON_DATA_INVALID", "PHOTO_INVALID_DIMENSIONS", "file is too big", "message to edit not found", ...);
a few rarer ones (media group size, photo over 10 MB) are close approximations. Parse modes HTML,
MarkdownV2 and Markdown are parsed strictly enough to reject what Telegram rejects in common cases
(unescaped ``<`` or ``.``, unclosed tags), and lengths are counted after parsing in UTF-16 units.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import html
import io
import itertools
import json
import logging
import mimetypes
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from PIL import Image

log = logging.getLogger(__name__)

JSON = dict[str, Any]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
MAX_BUTTONS = 100
MAX_CALLBACK_ANSWER = 200
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_SIDES = 10_000  # width + height
MAX_PHOTO_RATIO = 20.0
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
MAX_POLL_TIMEOUT = 50.0
PHOTO_THUMB_SIDES = (90, 320, 800)  # the smaller PhotoSizes Telegram adds below the original

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
# Form fields PTB sends as raw strings that must never be JSON-decoded ("123" stays a text, not a number).
_STRING_PARAMS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "action", "file_id", "inline_message_id", "url",
    "language_code", "photo", "document", "video", "animation", "audio", "voice", "sticker", "emoji",
    "business_connection_id", "message_effect_id", "description", "short_description", "name", "title",
})


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional ``parameters``."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def payload(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


@dataclass
class Upload:
    """One multipart file part of a request, as the bot sent it."""

    data: bytes
    filename: str | None
    content_type: str | None


@dataclass
class Call:
    """One recorded Bot API request (``params`` JSON-decoded, ``files`` the multipart uploads)."""

    index: int
    method: str
    params: JSON
    files: dict[str, Upload]
    time: float
    ok: bool = True
    status: int = 200
    error: str | None = None
    result: Any = None
    consumed: bool = False


@dataclass
class StoredFile:
    """A file the server knows: uploaded by the bot or sent by a fake user.

    ``size`` is what Telegram reports and may exceed ``len(data)`` for faked huge files.
    ``group`` holds the file_ids of all PhotoSizes of the same photo (for re-sending by file_id).
    """

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    size: int
    file_path: str
    mime_type: str | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None
    group: list[str] = field(default_factory=list)


class Sent(dict):  # type: ignore[type-arg]
    """The update/message dict a ``user_*`` helper returns; awaiting it is a no-op returning itself.

    Why awaitable: the helpers act immediately (they only queue an update), but e2e tests read naturally as
    ``await tg.user_sends_text(...)`` too; both spellings must work so neither is a trap.
    """

    def __await__(self) -> Generator[Any, None, Sent]:
        return self
        yield  # pragma: no cover - makes this a generator


def _utf16_len(text: str) -> int:
    """Telegram counts lengths and entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


# -- formatting (parse_mode) ------------------------------------------------------------------------------

_HTML_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
    "blockquote", "tg-emoji", "tg-time",
})
_HTML_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>")
_HTML_ENTITY = re.compile(r"&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
_MD2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MD2_NAMES = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler", "[": "TextUrl"}


def _parse_error(what: str) -> ApiError:
    return bad_request(f"can't parse entities: {what}")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _html_plain(text: str) -> str:
    """Text of an HTML-formatted message; raises like Telegram on unsupported or unbalanced tags."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            m = _HTML_TAG.match(text, i)
            if not m:
                raise _parse_error(f'Unsupported start tag "" at byte offset {_byte_offset(text, i)}')
            closing, tag = m.group(1) == "/", m.group(2).lower()
            if tag not in _HTML_TAGS:
                kind = "end" if closing else "start"
                raise _parse_error(f'Unsupported {kind} tag "{tag}" at byte offset {_byte_offset(text, i)}')
            if closing:
                if not stack or stack[-1] != tag:
                    expected = f'"</{stack[-1]}>"' if stack else "no end tag"
                    raise _parse_error(f"Unmatched end tag at byte offset {_byte_offset(text, i)}, "
                                       f'expected {expected}, found "</{tag}>"')
                stack.pop()
            else:
                stack.append(tag)
            i = m.end()
        elif ch == "&":
            m = _HTML_ENTITY.match(text, i)
            if m:
                out.append(html.unescape(m.group(0)))
                i = m.end()
            else:
                out.append(ch)
                i += 1
        elif ch == ">":
            # Telegram tolerates a bare ">" in HTML mode; only "<" and "&" start markup.
            out.append(ch)
            i += 1
        else:
            out.append(ch)
            i += 1
    if stack:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _md2_plain(text: str) -> str:
    """Text of a MarkdownV2 message; every reserved character must be escaped or be markup."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 < n and 0 < ord(text[i + 1]) < 127:
                out.append(text[i + 1])
                i += 2
                continue
            out.append(ch)
            i += 1
            continue
        if ch == "`":
            fence = "```" if text.startswith("```", i) else "`"
            j, body = i + len(fence), []
            while j < n and not text.startswith(fence, j):
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                body.append(text[j])
                j += 1
            if j >= n:
                name = "Pre" if fence == "```" else "Code"
                raise _parse_error(f"Can't find end of {name} entity at byte offset {_byte_offset(text, i)}")
            chunk = "".join(body)
            if fence == "```" and "\n" in chunk:
                chunk = chunk.split("\n", 1)[1]  # the first line names the language
            out.append(chunk)
            i = j + len(fence)
            continue
        token = ch
        if ch == "_" and text.startswith("__", i):
            token = "__"
        elif ch == "|" and text.startswith("||", i):
            token = "||"
        if token in ("*", "_", "__", "~", "||"):
            if stack and stack[-1][0] == token:
                stack.pop()
            else:
                stack.append((token, i))
            i += len(token)
            continue
        if ch == "[":
            stack.append(("[", i))
            i += 1
            continue
        if ch == "]" and stack and stack[-1][0] == "[":
            stack.pop()
            if not text.startswith("(", i + 1):
                raise _parse_error(f"Can't find end of a TextUrl entity at byte offset {_byte_offset(text, i)}")
            j = i + 2
            while j < n and text[j] != ")":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise _parse_error(f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}")
            i = j + 1
            continue
        if ch == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # a blockquote line
            continue
        if ch in _MD2_RESERVED:
            raise _parse_error(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")
        out.append(ch)
        i += 1
    if stack:
        token, at = stack[-1]
        raise _parse_error(f"Can't find end of {_MD2_NAMES[token]} entity at byte offset {_byte_offset(text, at)}")
    return "".join(out)


def _md_plain(text: str) -> str:
    """Text of a legacy Markdown message: *bold*, _italic_, `code`, ```pre```, [text](url), unclosed fails."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if ch in "*_`":
            fence = "```" if text.startswith("```", i) else ch
            end = text.find(fence, i + len(fence))
            if end < 0:
                raise _parse_error(f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}")
            out.append(text[i + len(fence):end])
            i = end + len(fence)
            continue
        if ch == "[":
            m = re.compile(r"\[([^\]]*)\]\(([^)]*)\)").match(text, i)
            if m:
                out.append(m.group(1))
                i = m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def plain_text(text: str, parse_mode: str | None) -> str:
    """What Telegram stores as the message text: markup parsed away, surrounding whitespace trimmed."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        text = _html_plain(text)
    elif mode == "markdownv2":
        text = _md2_plain(text)
    elif mode == "markdown":
        text = _md_plain(text)
    elif mode:
        raise bad_request(f"unsupported parse_mode {parse_mode!r}")
    return text.strip()


def _check_text(text: Any, parse_mode: str | None) -> str:
    if not isinstance(text, str):
        raise bad_request("message text is empty")
    plain = plain_text(text, parse_mode)
    if not plain:
        raise bad_request("message text is empty")
    if _utf16_len(plain) > MAX_TEXT:
        raise bad_request("message is too long")
    return plain


def _check_caption(caption: Any, parse_mode: str | None) -> str | None:
    if caption is None:
        return None
    plain = plain_text(str(caption), parse_mode)
    if _utf16_len(plain) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    return plain or None


def _check_markup(markup: Any) -> JSON | None:
    """Validate a reply_markup like Telegram; return the inline keyboard to echo in the Message, if any."""
    if markup is None:
        return None
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            raise bad_request("can't parse reply keyboard markup JSON object") from None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return None  # reply keyboards, ForceReply and removals are accepted but not part of the Message
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays')
    buttons = [button for row in rows for button in row]
    if len(buttons) > MAX_BUTTONS:
        raise bad_request("reply markup is too long")
    for button in buttons:
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise bad_request("can't parse inline keyboard button: Field \"text\" must be of type String")
        if not button["text"].strip():
            raise bad_request("BUTTON_TEXT_INVALID")
        actions = set(button) - {"text", "style", "icon_custom_emoji_id"}
        if not actions:
            raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
        if "callback_data" in button:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
                raise bad_request("BUTTON_DATA_INVALID")
        if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
            raise bad_request(f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL")
    return {"inline_keyboard": rows} if buttons else None


# -- the server ---------------------------------------------------------------------------------------

class FakeTelegram:
    """An in-process Bot API server on 127.0.0.1 with a random free port; see the module docstring."""

    def __init__(self, bot_id: int = 7_000_000_001, username: str = "fake_style_bot") -> None:
        self.token = f"{bot_id}:FAKE{secrets.token_hex(16)}"
        self.bot_user: JSON = {
            "id": bot_id, "is_bot": True, "first_name": "Fake Style Bot", "username": username,
            "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False,
        }
        self.port = 0
        self.calls: list[Call] = []
        self.callback_answers: dict[str, JSON] = {}  # callback_query_id -> answer params
        self.commands: dict[str, list[JSON]] = {}  # scope/language key -> BotCommand list
        self.descriptions: dict[str, str] = {}  # "description|ru", "short_description|" -> text
        self.menu_buttons: dict[str, JSON] = {}  # chat id ("" for the default) -> MenuButton
        self.inline_answers: dict[str, JSON] = {}  # inline_query_id -> answerInlineQuery params
        self.webhook: JSON | None = None  # setWebhook's parameters while one is set
        self.files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._users: dict[int, JSON] = {}
        self._blocked: set[int] = set()
        self._chats: dict[int, dict[int, JSON]] = {}  # chat_id -> message_id -> Message (all, in order)
        self._deleted: set[tuple[int, int]] = set()
        self._formatting: dict[tuple[int, int], tuple[str, str | None]] = {}  # raw text/caption + parse_mode
        self._next_message_id: dict[int, int] = {}
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(100_001)
        self._file_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._media_groups = itertools.count(13_000_000_000_000_001)
        self._pending_queries: set[str] = set()
        self._allowed_updates: list[str] | None = None
        self._faults: dict[str, list[ApiError]] = {}
        self._rate: float | None = None  # limit_rate: sending calls per second overall
        self._sent_times: deque[float] = deque()
        self.rate_limited = 0
        self.deliveries: list[tuple[int, str, int]] = []  # push mode: (update_id, url, HTTP status or 0)
        self._pusher: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, Callable[[JSON, dict[str, Upload]], Any]] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": self._set_description("description"),
            "setMyShortDescription": self._set_description("short_description"),
            "setChatMenuButton": self._set_menu_button,
            "answerInlineQuery": self._answer_inline_query,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendMediaGroup": self._send_media_group,
            "sendVideo": self._send_clip("video"),
            "sendAnimation": self._send_clip("animation"),
            "sendVideoNote": self._send_clip("video_note"),
            "editMessageText": self._edit_text,
            "editMessageReplyMarkup": self._edit_markup,
            "editMessageCaption": self._edit_caption,
            "editMessageMedia": self._edit_media,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
        }
        self._by_lower = {name.lower(): name for name in [*self._handlers, "getUpdates"]}

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """PTB's ``base_url``: it appends the token and then ``/method``."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 16 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._closing = False
        log.debug("fake Telegram listening on %s", self.base_url)
        return self

    async def stop(self) -> None:
        """Release pending long polls, stop pushing webhooks, then close the server."""
        self._closing = True
        self._notify()
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- users and their updates -----------------------------------------------------------------------

    def user(self, user_id: int, **fields: Any) -> JSON:
        """The fake user ``user_id`` (created on first use; ``fields`` override first_name, language_code...)."""
        user = self._users.setdefault(user_id, {
            "id": user_id, "is_bot": False, "first_name": f"User{user_id}", "username": f"user{user_id}",
            "language_code": "en",
        })
        user.update(fields)
        self._chats.setdefault(user_id, {})
        return user

    def block(self, user_id: int, blocked: bool = True) -> None:
        """Make sends to ``user_id`` fail with 403 "bot was blocked by the user" (or undo it)."""
        (self._blocked.add if blocked else self._blocked.discard)(user_id)

    def user_sends_text(self, user_id: int, text: str) -> Sent:
        """A private text message; ``/commands`` get ``bot_command`` entities as Telegram adds them."""
        entities = [
            {"type": "bot_command", "offset": _utf16_len(text[:m.start()]), "length": _utf16_len(m.group(0))}
            for m in re.finditer(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]+)?", text)
        ]
        fields: JSON = {"text": text}
        if entities:
            fields["entities"] = entities
        return self._user_message(user_id, fields)

    def user_sends_photo(self, user_id: int, image: bytes, caption: str | None = None,
                         file_size: int | None = None, media_group_id: str | None = None) -> Sent:
        """A compressed photo: PhotoSizes of 90/320/800 px below the original, the original last.

        ``file_size`` overrides the reported size of the largest PhotoSize (fakes a huge photo);
        ``media_group_id`` makes it part of an album (Telegram sends each photo as its own update).
        """
        sizes = self._store_photo(image, file_size)
        fields = self._with_caption({"photo": sizes}, caption)
        if media_group_id:
            fields["media_group_id"] = media_group_id
        return self._user_message(user_id, fields)

    def user_sends_album(self, user_id: int, images: list[bytes]) -> list[Sent]:
        """2-10 photos sent together: one update each, sharing a fresh ``media_group_id``."""
        if not 2 <= len(images) <= 10:
            raise ValueError("an album has 2-10 photos")
        group = str(next(self._media_groups))
        return [self.user_sends_photo(user_id, image, media_group_id=group) for image in images]

    def user_inline_query(self, user_id: int, query: str = "") -> Sent:
        """The user types ``@bot query`` in some chat: an ``inline_query`` update."""
        query_id = f"{next(self._query_ids)}{secrets.randbelow(10**9):09d}"
        payload = {"id": query_id, "from": copy.deepcopy(self.user(user_id)), "query": query, "offset": "",
                   "chat_type": "private"}
        return self._push_update("inline_query", payload)

    def user_sends_document(self, user_id: int, data: bytes, file_name: str = "file.bin",
                            mime_type: str | None = None, caption: str | None = None,
                            file_size: int | None = None) -> Sent:
        """A file sent "as document" (no compression); ``file_size`` fakes a huge one."""
        mime_type = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        stored = self._store_file("document", data, mime_type=mime_type, file_name=file_name, size=file_size)
        return self._user_message(user_id, self._with_caption({"document": self._document(stored)}, caption))

    def user_sends_sticker(self, user_id: int, data: bytes = b"RIFF\x00\x00\x00\x00WEBP", emoji: str = "🙂") -> Sent:
        stored = self._store_file("sticker", data, mime_type="image/webp", width=512, height=512)
        sticker = {**self._file_ref(stored), "type": "regular", "width": 512, "height": 512,
                   "is_animated": False, "is_video": False, "emoji": emoji}
        return self._user_message(user_id, {"sticker": sticker})

    def user_sends_animation(self, user_id: int, data: bytes = b"GIF89a", file_size: int | None = None,
                             width: int = 320, height: int = 240, duration: int = 2) -> Sent:
        """A GIF as Telegram hands it to bots: an mp4 "animation" (``data`` should be that mp4)."""
        stored = self._store_file("animation", data, mime_type="video/mp4", file_name="animation.mp4",
                                  width=width, height=height, size=file_size)
        animation = {**self._document(stored), "width": width, "height": height, "duration": duration}
        # Telegram sets both fields for animations, for clients that do not know the newer one.
        return self._user_message(user_id, {"animation": animation, "document": self._document(stored)})

    def user_sends_video(self, user_id: int, data: bytes = b"\x00\x00\x00\x18ftypmp42",
                         file_size: int | None = None, width: int = 640, height: int = 360,
                         duration: int = 3) -> Sent:
        stored = self._store_file("video", data, mime_type="video/mp4", file_name="video.mp4",
                                  width=width, height=height, size=file_size)
        video = {**self._document(stored), "width": width, "height": height, "duration": duration}
        return self._user_message(user_id, {"video": video})

    def user_sends_video_note(self, user_id: int, data: bytes, length: int = 240, duration: int = 2) -> Sent:
        """A round video message: square, no caption, no file name."""
        stored = self._store_file("video_note", data, mime_type="video/mp4", width=length, height=length)
        note = {**self._file_ref(stored), "length": length, "duration": duration, "file_size": stored.size}
        return self._user_message(user_id, {"video_note": note})

    def user_sends_voice(self, user_id: int, data: bytes = b"OggS", file_size: int | None = None) -> Sent:
        stored = self._store_file("voice", data, mime_type="audio/ogg", size=file_size)
        voice = {**self._file_ref(stored), "duration": 2, "mime_type": "audio/ogg", "file_size": stored.size}
        return self._user_message(user_id, {"voice": voice})

    def user_replies(self, user_id: int, reply_to_message_id: int, text: str | None = None,
                     photo: bytes | None = None) -> Sent:
        """A reply (text, or a photo with ``text`` as caption) quoting one message of the chat."""
        original = self._message(user_id, reply_to_message_id)
        if original is None:
            raise LookupError(f"chat {user_id} has no message {reply_to_message_id}")
        quoted = {k: v for k, v in copy.deepcopy(original).items() if k != "reply_to_message"}
        if photo is not None:
            fields = self._with_caption({"photo": self._store_photo(photo, None)}, text)
        else:
            fields = {"text": text or ""}
        fields["reply_to_message"] = quoted
        return self._user_message(user_id, fields)

    def user_presses(self, user_id: int, message_id: int, callback_data: str) -> Sent:
        """Press the inline button carrying ``callback_data`` on a bot message (it must be there)."""
        message = self._message(user_id, message_id)
        if message is None or (user_id, message_id) in self._deleted:
            raise LookupError(f"chat {user_id} has no message {message_id}")
        datas = [b.get("callback_data") for b in self.buttons(message)]
        if callback_data not in datas:
            raise LookupError(f"message {message_id} has no button with callback_data {callback_data!r}: {datas}")
        query_id = f"{next(self._query_ids)}{secrets.randbelow(10**9):09d}"
        self._pending_queries.add(query_id)
        query = {"id": query_id, "from": copy.deepcopy(self.user(user_id)), "message": copy.deepcopy(message),
                 "chat_instance": str(-(10**18) - user_id), "data": callback_data}
        return self._push_update("callback_query", query)

    def user_forges_press(self, user_id: int, callback_data: str, message_id: int | None = None) -> Sent:
        """A callback query with any data, on one of the user's own bot messages (the newest by default): what a
        modified client, a stranger's copy of someone else's buttons or an old keyboard sends. Telegram does
        not check the data against the message's buttons for the bot; the bot must."""
        mine = self.messages(user_id)
        message = next((m for m in mine if m["message_id"] == message_id), None) if message_id else (
            mine[-1] if mine else None)
        if message is None:
            message = {"message_id": 1, "date": int(time.time()), "chat": {"id": user_id, "type": "private"},
                       "from": copy.deepcopy(self.bot_user), "text": "…"}
        query_id = f"{next(self._query_ids)}{secrets.randbelow(10**9):09d}"
        self._pending_queries.add(query_id)
        query = {"id": query_id, "from": copy.deepcopy(self.user(user_id)), "message": copy.deepcopy(message),
                 "chat_instance": str(-(10**18) - user_id), "data": callback_data}
        return self._push_update("callback_query", query)

    async def press_button(self, user_id: int, text_prefix: str, message_id: int | None = None) -> Sent:
        """Press the newest inline button whose text starts with ``text_prefix`` (optionally on one message)."""
        message, button = self.find_button(user_id, text_prefix, message_id)
        if "callback_data" not in button:
            raise LookupError(f"button {button['text']!r} is not a callback button: {button}")
        return self.user_presses(user_id, message["message_id"], button["callback_data"])

    # -- observing ---------------------------------------------------------------------------------------

    def messages(self, chat_id: int, include_user: bool = False) -> list[JSON]:
        """Messages of a chat as they are now (edits applied, deleted ones gone), oldest first; bot's only
        unless ``include_user``. Copies: mutating them changes nothing."""
        return [copy.deepcopy(m) for mid, m in self._chats.get(chat_id, {}).items()
                if (chat_id, mid) not in self._deleted and (include_user or m["from"]["id"] == self.bot_user["id"])]

    def last_message(self, chat_id: int) -> JSON | None:
        found = self.messages(chat_id)
        return found[-1] if found else None

    def file_bytes(self, file_id: str) -> bytes:
        return self.files[file_id].data

    def sent_photos(self, chat_id: int) -> list[bytes]:
        """Bytes of the largest size of every photo the bot sent to the chat (deleted ones included)."""
        return [self.files[m["photo"][-1]["file_id"]].data for m in self._bot_messages(chat_id) if "photo" in m]

    def sent_documents(self, chat_id: int) -> list[tuple[str, bytes]]:
        """(file_name, bytes) of every document the bot sent to the chat (deleted ones included)."""
        return [(m["document"].get("file_name", ""), self.files[m["document"]["file_id"]].data)
                for m in self._bot_messages(chat_id) if "document" in m]

    @staticmethod
    def buttons(message: JSON) -> list[JSON]:
        """The inline buttons of a message, row by row flattened."""
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row]

    def find_button(self, chat_id: int, text_prefix: str, message_id: int | None = None) -> tuple[JSON, JSON]:
        """(message, button) of the newest bot message having a button whose text starts with the prefix."""
        candidates = self.messages(chat_id)
        if message_id is not None:
            candidates = [m for m in candidates if m["message_id"] == message_id]
        for message in reversed(candidates):
            for button in self.buttons(message):
                if button["text"].startswith(text_prefix):
                    return message, button
        seen = [b["text"] for m in candidates for b in self.buttons(m)]
        raise LookupError(f"no button starting with {text_prefix!r} in chat {chat_id}; buttons: {seen}")

    def mark(self) -> int:
        """Index of the next call: ``wait_for(..., since=tg.mark())`` ignores everything before it."""
        return len(self.calls)

    async def wait_for(self, method: str | Iterable[str], predicate: Callable[[Call], bool] | None = None,
                       timeout: float = 30.0, since: int | None = None, include_errors: bool = False) -> Call:
        """The first matching successful call not yet returned by ``wait_for`` (from index ``since``
        if given, consumed or not), waiting for it up to ``timeout`` seconds; AssertionError otherwise."""
        methods = {method} if isinstance(method, str) else set(method)

        def find() -> Call | None:
            start = since or 0
            for call in self.calls[start:]:
                if (call.method in methods and (since is not None or not call.consumed)
                        and (call.ok or include_errors) and (predicate is None or predicate(call))):
                    return call
            return None

        async def found() -> Call:
            while (call := find()) is None:
                await self._wait_change()
            return call

        try:
            call = await asyncio.wait_for(found(), timeout)
        except TimeoutError:
            recent = [f"{c.method}{'' if c.ok else ' ' + str(c.error)}" for c in self.calls[-15:]]
            raise AssertionError(f"no {sorted(methods)} call within {timeout}s; last calls: {recent}") from None
        call.consumed = True
        return call

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``condition()`` holds, re-checked after every request the bot makes."""
        async def until() -> None:
            while not condition():
                await self._wait_change()
        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"condition not met within {timeout}s") from None

    # -- faults ------------------------------------------------------------------------------------------

    def flood(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer 429 with ``retry_after`` (PTB raises RetryAfter)."""
        self.fail(method, 429, f"Too Many Requests: retry after {retry_after}", times,
                  parameters={"retry_after": retry_after})

    def fail(self, method: str, status: int, description: str, times: int = 1,
             parameters: JSON | None = None) -> None:
        """The next ``times`` calls of ``method`` fail with this status/description, doing nothing."""
        name = self._by_lower.get(method.lower(), method)
        self._faults.setdefault(name, []).extend(ApiError(status, description, parameters) for _ in range(times))

    def limit_rate(self, per_second: float | None = 30) -> None:
        """Telegram's 30 messages/s overall: sending and editing calls beyond it get 429 (None: no limit)."""
        self._rate = per_second

    def _check_rate(self, name: str) -> None:
        if self._rate is None or not (name.startswith("send") or name.startswith("edit")) or name == "sendChatAction":
            return
        now = time.monotonic()
        while self._sent_times and now - self._sent_times[0] >= 1.0:
            self._sent_times.popleft()
        if len(self._sent_times) >= self._rate:
            self.rate_limited += 1
            raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        self._sent_times.append(now)

    # -- webhook push mode ---------------------------------------------------------------------------------

    def push_webhooks(self, replicas: list[str] | None = None, concurrency: int = 8) -> None:
        """Deliver queued updates to the webhook (see the module docstring); ``replicas`` default to the
        webhook URL itself."""
        if self._pusher is None:
            self._pusher = asyncio.create_task(self._push_loop(list(replicas or []), concurrency))

    @staticmethod
    def _update_user(update: JSON) -> int | None:
        for value in update.values():
            if isinstance(value, dict) and isinstance(value.get("from"), dict):
                return int(value["from"]["id"])
        return None

    async def _push_loop(self, replicas: list[str], concurrency: int) -> None:
        turn = itertools.count()
        busy_users: set[int | None] = set()
        in_flight: set[int] = set()
        tasks: set[asyncio.Task] = set()

        async def deliver(http: aiohttp.ClientSession, update: JSON, user: int | None) -> None:
            hook = self.webhook or {}
            url = hook.get("url", "")
            if replicas:
                url = replicas[next(turn) % len(replicas)].rstrip("/") + (urlsplit(url).path or "/")
            headers = {"X-Telegram-Bot-Api-Secret-Token": str(hook["secret_token"])} if hook.get("secret_token") else {}
            status = 0
            try:
                async with http.post(url, json=update, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=60)) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError):
                status = 0
            self.deliveries.append((update["update_id"], url, status))
            if status == 200:
                self._updates = [u for u in self._updates if u["update_id"] != update["update_id"]]
            else:
                await asyncio.sleep(0.2)  # Telegram backs off before delivering it again
            in_flight.discard(update["update_id"])
            busy_users.discard(user)
            self._notify()

        async with aiohttp.ClientSession() as http:
            while not self._closing:
                ready = None
                if self.webhook is not None and len(in_flight) < concurrency:
                    ready = next((u for u in self._updates if u["update_id"] not in in_flight
                                  and self._update_user(u) not in busy_users), None)
                if ready is None:
                    await self._wait_change(0.2)
                    continue
                user = self._update_user(ready)
                in_flight.add(ready["update_id"])
                busy_users.add(user)
                task = asyncio.create_task(deliver(http, copy.deepcopy(ready), user))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    # -- HTTP --------------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        requested = request.match_info["method"]
        name = self._by_lower.get(requested.lower(), requested)
        try:
            params, files = await self._read_params(request)
        except ValueError as exc:
            return web.json_response(bad_request(str(exc)).payload(), status=400)
        if name == "getUpdates":
            if self.webhook is not None:
                return web.json_response({"ok": False, "error_code": 409, "description":
                                          "Conflict: can't use getUpdates method while webhook is active; use "
                                          "deleteWebhook to delete the webhook first"}, status=409)
            try:
                self._take_fault(name)
                result: Any = await self._get_updates(params)
            except ApiError as exc:
                return web.json_response(exc.payload(), status=exc.status)
            return web.json_response({"ok": True, "result": result})
        call = Call(len(self.calls), name, params, files, time.monotonic())
        self.calls.append(call)
        try:
            handler = self._handlers.get(name)
            if handler is None:
                raise ApiError(404, "Not Found")
            self._take_fault(name)
            self._check_rate(name)
            result = handler(params, files)
        except ApiError as exc:
            call.ok, call.status, call.error = False, exc.status, exc.description
            log.debug("fake Telegram: %s -> %s %s", name, exc.status, exc.description)
            self._notify()
            return web.json_response(exc.payload(), status=exc.status)
        call.result = result
        self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.Response:
        stored = self._files_by_path.get(request.match_info["path"])
        if request.match_info["token"] != self.token or stored is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    @staticmethod
    async def _read_params(request: web.Request) -> tuple[JSON, dict[str, Upload]]:
        """Bot API parameters from the query string, a JSON body, a urlencoded or a multipart form."""
        raw: dict[str, Any] = dict(request.query)
        files: dict[str, Upload] = {}
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("parameters must be a JSON object")
            return {**raw, **body}, files
        if request.method == "POST" and request.body_exists:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = Upload(value.file.read(), value.filename, value.content_type)
                else:
                    raw[key] = value if isinstance(value, str) else bytes(value).decode("utf-8")
        params: JSON = {}
        for key, value in raw.items():
            if key in _STRING_PARAMS:
                params[key] = value
                continue
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
        return params, files

    def _take_fault(self, name: str) -> None:
        queue = self._faults.get(name)
        if queue:
            raise queue.pop(0)

    def _notify(self) -> None:
        """Wake everybody waiting for a change (long polls, wait_for, wait_until)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_change(self, timeout: float | None = None) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    # -- updates ------------------------------------------------------------------------------------------

    def _push_update(self, kind: str, payload: JSON) -> Sent:
        update = {"update_id": next(self._update_ids), kind: payload}
        self._updates.append(update)
        self._notify()
        return Sent(copy.deepcopy(update))

    async def _get_updates(self, params: JSON) -> list[JSON]:
        """Long poll: confirm everything below ``offset``, answer as soon as an update is queued."""
        offset = int(params.get("offset") or 0)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"]) or None
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = min(float(params.get("timeout") or 0), MAX_POLL_TIMEOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self._allowed_updates is not None:  # Telegram drops, not delays, updates of other kinds
                allowed = set(self._allowed_updates)
                self._updates = [u for u in self._updates if allowed & set(u)]
            remaining = deadline - time.monotonic()
            if self._updates or self._closing or remaining <= 0:
                return copy.deepcopy(self._updates[:limit])
            await self._wait_change(remaining)

    # -- methods -----------------------------------------------------------------------------------------

    def _true(self, params: JSON, files: dict[str, Upload]) -> bool:
        return True

    def _get_me(self, params: JSON, files: dict[str, Upload]) -> JSON:
        return dict(self.bot_user)

    def _delete_webhook(self, params: JSON, files: dict[str, Upload]) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = None
        return True

    def _set_webhook(self, params: JSON, files: dict[str, Upload]) -> bool:
        """Record the webhook (url, secret_token, allowed_updates); tests POST updates to it themselves."""
        url = str(params.get("url") or "")
        if url and not re.match(r"^https?://\S+$", url):
            raise bad_request("bad webhook: invalid URL")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        self.webhook = {k: v for k, v in params.items()} if url else None
        return True

    def _webhook_info(self, params: JSON, files: dict[str, Upload]) -> JSON:
        url = (self.webhook or {}).get("url", "")
        return {"url": url, "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    @staticmethod
    def _commands_key(params: JSON) -> str:
        scope = params.get("scope") or {"type": "default"}
        return f"{json.dumps(scope, sort_keys=True)}|{params.get('language_code') or ''}"

    def _set_my_commands(self, params: JSON, files: dict[str, Upload]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("parameter commands is required")
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _get_my_commands(self, params: JSON, files: dict[str, Upload]) -> list[JSON]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    def _delete_my_commands(self, params: JSON, files: dict[str, Upload]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def _set_menu_button(self, params: JSON, files: dict[str, Upload]) -> bool:
        """The bot's menu button (a Mini App's ``web_app`` must be an https URL), per chat or the default."""
        button = params.get("menu_button") or {"type": "default"}
        button = json.loads(button) if isinstance(button, str) else button
        if button.get("type") == "web_app" and not str((button.get("web_app") or {}).get("url", "")).startswith(
                "https://"):
            raise bad_request("WEBAPP_URL_INVALID")
        self.menu_buttons[str(params.get("chat_id") or "")] = button
        return True

    def _set_description(self, field: str) -> Callable[[JSON, dict[str, Upload]], bool]:
        limit = 512 if field == "description" else 120

        def handle(params: JSON, files: dict[str, Upload]) -> bool:
            text = str(params.get(field) or "")
            if len(text) > limit:
                raise bad_request(f"{field.upper()}_INVALID")
            self.descriptions[f"{field}|{params.get('language_code') or ''}"] = text
            return True

        return handle

    def _answer_inline_query(self, params: JSON, files: dict[str, Upload]) -> bool:
        results = params.get("results")
        if isinstance(results, str):
            results = json.loads(results)
        if not isinstance(results, list) or len(results) > 50:
            raise bad_request("RESULTS_TOO_MUCH")
        for result in results:
            cached = result.get("photo_file_id") if result.get("type") == "photo" else None
            if cached is not None and cached not in self.files:
                raise bad_request("PHOTO_INVALID")  # cached results must name a file Telegram holds
        self.inline_answers[str(params.get("inline_query_id"))] = {**params, "results": results}
        return True

    def _send_message(self, params: JSON, files: dict[str, Upload]) -> JSON:
        chat_id = self._target_chat(params)
        raw, mode = params.get("text"), params.get("parse_mode")
        text = _check_text(raw, mode)
        markup = _check_markup(params.get("reply_markup"))
        return self._bot_message(chat_id, {"text": text}, params, markup, (str(raw), mode))

    def _send_photo(self, params: JSON, files: dict[str, Upload]) -> JSON:
        chat_id = self._target_chat(params)
        caption = _check_caption(params.get("caption"), params.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        sizes = self._input_photo(params.get("photo"), files, "photo")
        return self._bot_message(chat_id, self._with_caption({"photo": sizes}, caption), params, markup,
                                 (str(params.get("caption") or ""), params.get("parse_mode")))

    def _send_document(self, params: JSON, files: dict[str, Upload]) -> JSON:
        chat_id = self._target_chat(params)
        caption = _check_caption(params.get("caption"), params.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        document = self._input_document(params.get("document"), files, "document")
        return self._bot_message(chat_id, self._with_caption({"document": document}, caption), params, markup,
                                 (str(params.get("caption") or ""), params.get("parse_mode")))

    def _send_media_group(self, params: JSON, files: dict[str, Upload]) -> list[JSON]:
        chat_id = self._target_chat(params)
        media = params.get("media")
        if not isinstance(media, list):
            raise bad_request("parameter \"media\" is required and must be an Array")
        if not 2 <= len(media) <= 10:
            raise bad_request("wrong number of media in the group: must be 2-10")
        kinds = {item.get("type") for item in media if isinstance(item, dict)}
        if "document" in kinds and kinds != {"document"}:
            raise bad_request("document can't be mixed with other media types")
        prepared = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") not in ("photo", "document"):
                raise bad_request("unsupported media type in the fake server (photo and document only)")
            caption = _check_caption(item.get("caption"), item.get("parse_mode"))
            if item["type"] == "photo":
                fields: JSON = {"photo": self._input_photo(item.get("media"), files, "media")}
            else:
                fields = {"document": self._input_document(item.get("media"), files, "media")}
            prepared.append((self._with_caption(fields, caption), item))
        group_id = str(next(self._media_groups))
        return [self._bot_message(chat_id, {**fields, "media_group_id": group_id}, params, None,
                                  (str(item.get("caption") or ""), item.get("parse_mode")))
                for fields, item in prepared]

    def _send_clip(self, kind: str) -> Callable[[JSON, dict[str, Upload]], JSON]:
        """sendVideo / sendAnimation / sendVideoNote: an uploaded mp4 (<= 50 MB) or a known file_id."""
        field = {"video": "video", "animation": "animation", "video_note": "video_note"}[kind]

        def send(params: JSON, files: dict[str, Upload]) -> JSON:
            chat_id = self._target_chat(params)
            caption = None if kind == "video_note" else _check_caption(params.get("caption"), params.get("parse_mode"))
            markup = _check_markup(params.get("reply_markup"))
            upload = self._upload(params.get(field), files, field)
            if upload is None:
                stored = self._known_file(params.get(field), (kind, "document"), field)
            else:
                if not upload.data:
                    raise bad_request("file must be non-empty")
                if len(upload.data) > MAX_UPLOAD_BYTES:
                    raise ApiError(413, "Request Entity Too Large")
                if kind == "video_note" and int(params.get("length") or 0) > 640:
                    raise bad_request("VIDEO_NOTE_LENGTH_INVALID")
                stored = self._store_file(kind, upload.data, "video/mp4", file_name=upload.filename or f"{kind}.mp4")
            media: JSON = {**self._document(stored), "duration": int(params.get("duration") or 0)}
            if kind == "video_note":
                media = {**self._file_ref(stored), "length": int(params.get("length") or 0),
                         "duration": media["duration"], "file_size": stored.size}
            else:
                media.update(width=int(params.get("width") or 0), height=int(params.get("height") or 0))
            fields: JSON = {field: media}
            if kind == "animation":
                fields["document"] = self._document(stored)
            return self._bot_message(chat_id, self._with_caption(fields, caption), params, markup,
                                     (str(params.get("caption") or ""), params.get("parse_mode")))

        return send

    def sent_clips(self, chat_id: int, kind: str) -> list[tuple[JSON, bytes]]:
        """(message, file bytes) of every video / animation / video_note the bot sent to ``chat_id``."""
        return [(m, self.files[m[kind]["file_id"]].data) for m in self._bot_messages(chat_id) if kind in m]

    def _edit_target(self, params: JSON) -> tuple[int, int, JSON]:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the fake server")
        chat_id = self._target_chat(params, sending=False)
        message_id = params.get("message_id")
        message = self._message(chat_id, message_id) if isinstance(message_id, int) else None
        if message is None or (chat_id, message_id) in self._deleted:
            raise bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise bad_request("message can't be edited")
        return chat_id, message_id, message

    def _apply_edit(self, chat_id: int, message_id: int, message: JSON, changes: JSON,
                    markup: JSON | None, formatting: tuple[str, str | None] | None) -> JSON:
        """Apply an edit unless it changes nothing (then Telegram's "message is not modified")."""
        same_content = all(message.get(k) == v for k, v in changes.items())
        same_formatting = formatting is None or self._formatting.get((chat_id, message_id)) == formatting
        if same_content and same_formatting and message.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        if formatting is not None:
            self._formatting[(chat_id, message_id)] = formatting
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _edit_text(self, params: JSON, files: dict[str, Upload]) -> JSON:
        chat_id, message_id, message = self._edit_target(params)
        raw, mode = params.get("text"), params.get("parse_mode")
        text = _check_text(raw, mode)
        markup = _check_markup(params.get("reply_markup"))
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        return self._apply_edit(chat_id, message_id, message, {"text": text}, markup, (str(raw), mode))

    def _edit_markup(self, params: JSON, files: dict[str, Upload]) -> JSON:
        chat_id, message_id, message = self._edit_target(params)
        markup = _check_markup(params.get("reply_markup"))
        return self._apply_edit(chat_id, message_id, message, {}, markup, None)

    def _edit_caption(self, params: JSON, files: dict[str, Upload]) -> JSON:
        chat_id, message_id, message = self._edit_target(params)
        caption = _check_caption(params.get("caption"), params.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        if "text" in message:
            raise bad_request("there is no caption in the message to edit")
        formatting = (str(params.get("caption") or ""), params.get("parse_mode"))
        return self._apply_edit(chat_id, message_id, message, {"caption": caption}, markup, formatting)

    def _edit_media(self, params: JSON, files: dict[str, Upload]) -> JSON:
        chat_id, message_id, message = self._edit_target(params)
        item = params.get("media")
        if not isinstance(item, dict) or item.get("type") not in ("photo", "document"):
            raise bad_request("unsupported media type in the fake server (photo and document only)")
        if "text" in message:
            raise bad_request("there is no media in the message to edit")
        caption = _check_caption(item.get("caption"), item.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        if item["type"] == "photo":
            changes: JSON = {"photo": self._input_photo(item.get("media"), files, "media"), "document": None}
        else:
            changes = {"document": self._input_document(item.get("media"), files, "media"), "photo": None}
        changes["caption"] = caption
        formatting = (str(item.get("caption") or ""), item.get("parse_mode"))
        return self._apply_edit(chat_id, message_id, message, changes, markup, formatting)

    def _delete_message(self, params: JSON, files: dict[str, Upload]) -> bool:
        chat_id = self._target_chat(params, sending=False)
        message_id = params.get("message_id")
        if not isinstance(message_id, int) or self._message(chat_id, message_id) is None \
                or (chat_id, message_id) in self._deleted:
            raise bad_request("message to delete not found")
        self._deleted.add((chat_id, message_id))
        return True

    def _answer_callback(self, params: JSON, files: dict[str, Upload]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._pending_queries:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text") or "")) > MAX_CALLBACK_ANSWER:
            raise bad_request("MESSAGE_TOO_LONG")
        self._pending_queries.discard(query_id)
        self.callback_answers[query_id] = dict(params)
        return True

    def _send_chat_action(self, params: JSON, files: dict[str, Upload]) -> bool:
        self._target_chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _get_file(self, params: JSON, files: dict[str, Upload]) -> JSON:
        stored = self.files.get(str(params.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > MAX_DOWNLOAD_BYTES:
            raise bad_request("file is too big")
        return {**self._file_ref(stored), "file_size": stored.size, "file_path": stored.file_path}

    # -- helpers: chats, messages, files -----------------------------------------------------------------

    def _target_chat(self, params: JSON, sending: bool = True) -> int:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id not in self._users:
            raise bad_request("chat not found")
        if sending and chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _message(self, chat_id: int, message_id: Any) -> JSON | None:
        return self._chats.get(chat_id, {}).get(message_id) if isinstance(message_id, int) else None

    def _bot_messages(self, chat_id: int) -> list[JSON]:
        return [m for m in self._chats.get(chat_id, {}).values() if m["from"]["id"] == self.bot_user["id"]]

    def _new_message(self, chat_id: int, sender: JSON, fields: JSON) -> JSON:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        user = self._users[chat_id]
        chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
        if user.get("username"):
            chat["username"] = user["username"]
        message = {"message_id": message_id, "from": copy.deepcopy(sender), "chat": chat,
                   "date": int(time.time()), **fields}
        self._chats.setdefault(chat_id, {})[message_id] = message
        return message

    def _user_message(self, user_id: int, fields: JSON) -> Sent:
        message = self._new_message(user_id, self.user(user_id), fields)
        return self._push_update("message", copy.deepcopy(message))

    def _bot_message(self, chat_id: int, fields: JSON, params: JSON, markup: JSON | None,
                     formatting: tuple[str, str | None]) -> JSON:
        fields = dict(fields)
        reply = params.get("reply_parameters") or {}
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        reply_to = params.get("reply_to_message_id", reply_to)
        if reply_to is not None:
            original = self._message(chat_id, reply_to)
            if original is None or (chat_id, reply_to) in self._deleted:
                lenient = params.get("allow_sending_without_reply") or (
                    isinstance(reply, dict) and reply.get("allow_sending_without_reply"))
                if not lenient:
                    raise bad_request("message to be replied not found")
            else:
                fields["reply_to_message"] = {k: v for k, v in copy.deepcopy(original).items()
                                              if k != "reply_to_message"}
        if markup is not None:
            fields["reply_markup"] = markup
        message = self._new_message(chat_id, self.bot_user, fields)
        self._formatting[(chat_id, message["message_id"])] = formatting
        return copy.deepcopy(message)

    @staticmethod
    def _with_caption(fields: JSON, caption: str | None) -> JSON:
        if caption:
            fields["caption"] = caption
        return fields

    def _store_file(self, kind: str, data: bytes, mime_type: str | None = None, file_name: str | None = None,
                    width: int | None = None, height: int | None = None, size: int | None = None) -> StoredFile:
        number = next(self._file_ids)
        prefix = {"photo": "AgAC", "document": "BQAC", "sticker": "CAAC", "animation": "CgAC", "video": "BAAC",
                  "voice": "AwAC", "video_note": "DQAC"}.get(kind, "BQAC")
        file_id = f"{prefix}AgIAAxkBAA{number:08d}{secrets.token_hex(8)}"
        folder = {"photo": "photos", "sticker": "stickers", "animation": "animations", "video": "videos",
                  "voice": "voice", "video_note": "video_notes"}.get(kind, "documents")
        extension = mimetypes.guess_extension(mime_type or "") or ".bin"
        if file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[1]
        stored = StoredFile(file_id, f"AQAD{number:08d}", kind, data, len(data) if size is None else size,
                            f"{folder}/file_{number}{extension}", mime_type, file_name, width, height)
        self.files[file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    @staticmethod
    def _file_ref(stored: StoredFile) -> JSON:
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}

    def _document(self, stored: StoredFile) -> JSON:
        document = {**self._file_ref(stored), "file_size": stored.size}
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        return document

    def _photo_sizes(self, stored: StoredFile) -> list[JSON]:
        sizes = []
        for file_id in stored.group:
            size = self.files[file_id]
            sizes.append({**self._file_ref(size), "width": size.width, "height": size.height,
                          "file_size": size.size})
        return sizes

    def _store_photo(self, data: bytes, file_size: int | None) -> list[JSON]:
        """Store a photo with the smaller PhotoSizes Telegram derives from it; return the PhotoSize list."""
        image = Image.open(io.BytesIO(data))
        image.load()
        width, height = image.size
        group = []
        for side in PHOTO_THUMB_SIDES:
            if max(width, height) <= side:
                continue
            thumb = image.convert("RGB")
            thumb.thumbnail((side, side))
            buf = io.BytesIO()
            thumb.save(buf, "JPEG", quality=80)
            group.append(self._store_file("photo", buf.getvalue(), "image/jpeg", width=thumb.width,
                                          height=thumb.height))
        mime = Image.MIME.get(image.format or "", "image/jpeg")
        group.append(self._store_file("photo", data, mime, width=width, height=height, size=file_size))
        for stored in group:
            stored.group = [s.file_id for s in group]
        return self._photo_sizes(group[-1])

    def _upload(self, value: Any, files: dict[str, Upload], name: str) -> Upload | None:
        """The multipart part a parameter refers to (by its own name or ``attach://``), if any."""
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
            if upload is None:
                raise bad_request(f"wrong file identifier/HTTP URL specified: no part {value}")
            return upload
        if value is None and name in files:
            return files[name]
        return None

    def _known_file(self, value: Any, kinds: tuple[str, ...], what: str) -> StoredFile:
        if not isinstance(value, str) or not value:
            raise bad_request(f"there is no {what} in the request")
        if value.startswith(("http://", "https://")):
            raise bad_request("wrong file identifier/HTTP URL specified")  # the fake server is offline
        stored = self.files.get(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if stored.kind not in kinds:
            raise bad_request(f"can't use file of type {stored.kind.capitalize()} as {what.capitalize()}")
        return stored

    def _input_photo(self, value: Any, files: dict[str, Upload], name: str) -> list[JSON]:
        upload = self._upload(value, files, name)
        if upload is None:
            return self._photo_sizes(self._known_file(value, ("photo",), "photo"))
        if not upload.data:
            raise bad_request("file must be non-empty")
        if len(upload.data) > MAX_PHOTO_BYTES:
            raise bad_request("PHOTO_SAVE_FILE_INVALID")
        try:
            with Image.open(io.BytesIO(upload.data)) as image:
                width, height = image.size
        except Exception:
            raise bad_request("IMAGE_PROCESS_FAILED") from None
        if width + height > MAX_PHOTO_SIDES or max(width, height) / max(1, min(width, height)) > MAX_PHOTO_RATIO:
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        return self._store_photo(upload.data, None)

    def _input_document(self, value: Any, files: dict[str, Upload], name: str) -> JSON:
        upload = self._upload(value, files, name)
        if upload is None:
            kinds = ("document", "animation", "video", "voice", "sticker")
            return self._document(self._known_file(value, kinds, "document"))
        if not upload.data:
            raise bad_request("file must be non-empty")
        if len(upload.data) > MAX_UPLOAD_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        file_name = upload.filename or "document"
        mime = mimetypes.guess_type(file_name)[0] or upload.content_type or "application/octet-stream"
        return self._document(self._store_file("document", upload.data, mime, file_name=file_name))
