"""``python -m bot``: configure from the environment / ``.env`` and poll Telegram until stopped."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError


def main() -> int:
    from .config import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"error: bad setting {'.'.join(map(str, first['loc'])).upper()}: {first['msg']}", file=sys.stderr)
        return 2
    if not settings.bot_token:
        print("error: BOT_TOKEN is not set: put it in the environment or in .env (see .env.example)",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per getUpdates poll otherwise

    from telegram import Update

    from .app import build_application

    app = build_application(settings)
    app.run_polling(allowed_updates=Update.ALL_TYPES, drop_pending_updates=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
