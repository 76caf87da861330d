"""The Telegram front end of the style-transfer library: conversation, persistent job queue, admin tools.

``python -m bot`` starts it; :func:`bot.app.build_application` builds the python-telegram-bot
``Application`` (the tests drive that same object against a fake Bot API server).
"""

import os as _os

# Opt in to python-telegram-bot's future behaviour (time periods as timedelta, e.g. RetryAfter.retry_after)
# instead of a deprecation warning on every flood-control answer; bot.tg handles both forms.
_os.environ.setdefault("PTB_TIMEDELTA", "1")
