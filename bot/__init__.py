"""The Telegram front end of the style-transfer library: conversation, persistent job queue, admin tools.

``python -m bot`` starts it; :func:`bot.app.build_application` builds the python-telegram-bot
``Application`` (the tests drive that same object against a fake Bot API server).
"""
