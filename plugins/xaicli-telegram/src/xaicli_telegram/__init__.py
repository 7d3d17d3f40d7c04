"""xaicli-telegram: a Telegram chat bot answering a chest image with its class and overlay
(:mod:`xaicli_telegram.bot`), run by ``xaicli-telegram`` (:mod:`xaicli_telegram.cli`)."""

__version__ = "0.1.0"
