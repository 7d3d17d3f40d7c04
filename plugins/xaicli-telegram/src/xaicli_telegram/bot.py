"""The chat bot: a photo or a document (PNG, JPEG, TIFF, DICOM) in, the class and the overlay out.

As the chest X-ray study's bot did, on xaicli's own serving core (:class:`xaicli.serve.core.
InferenceCore`, in this process: the same checks, limits and data rules as ``xaicli serve``): the
file is fetched into memory (never to disk) after its announced size was checked against the
upload limit, checked by content, de-identified if DICOM, held in the core's private temporary
folder only while it is analysed; the reply is the predicted class with its probability and the
overlay of the first method. Nothing of a file -- its name, caption or content -- is logged, and the
HTTP client's log (which prints URLs, the bot token in them) is kept quiet.

python-telegram-bot (https://python-telegram-bot.org) does the Bot API; its ``base_url`` and
``base_file_url`` point it at a local Bot API server (the tests use a fake one on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from xaicli.serve import results
from xaicli.serve.core import InferenceCore, Options
from xaicli.serve.errors import Refused

log = logging.getLogger("xaicli_telegram")

HELP = ("Send a chest image (a photo, or a PNG, JPEG, TIFF or DICOM file as a document): I answer with the "
        "predicted class and a map of the pixels the model used. DICOM files are de-identified on arrival; "
        "nothing is kept after the answer.")


def quiet_http_logs() -> None:
    """httpx logs every request URL at INFO: the Bot API's URLs carry the bot token."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def caption(analysis: Any) -> str:
    """``nodule (0.914) -- gradcam at relu4; red: what raised the score most`` and the runner-up classes."""
    record, info = analysis.record, analysis.info
    p = record.prediction
    lines = [p.text]
    if info.task == "classification" and p.probabilities is not None:
        ranked = sorted(zip(info.class_names, p.probabilities, strict=True), key=lambda kv: -kv[1])
        lines.append(", ".join(f"{name} {value:.3f}" for name, value in ranked[1:]))
    if record.maps:
        m = record.maps[0]
        lines.append(f"{m.method}{f' at {m.layer}' if m.layer else ''}: red marks what raised the score most")
    return "\n".join(lines)


class ImageBot:
    """The bot's handlers around one core. ``allowed_chats``: answer only these chat ids (empty: all)."""

    def __init__(self, core: InferenceCore, *, method: str | None = None, allowed_chats: Iterable[int] = ()) -> None:
        self.core = core
        self.method = method or core.config.methods[0]
        if self.method not in core.config.methods:
            raise Refused(400, f"method {self.method!r} is not served by this core")
        self.allowed = frozenset(int(c) for c in allowed_chats)

    def build(self, token: str, *, base_url: str | None = None, base_file_url: str | None = None) -> Any:
        """The python-telegram-bot Application: the core starts with it and stops with it."""
        from telegram.ext import ApplicationBuilder, CommandHandler, MessageHandler, filters

        builder = ApplicationBuilder().token(token).post_init(self._started).post_shutdown(self._stopped)
        if base_url:
            builder = builder.base_url(base_url)
        if base_file_url:
            builder = builder.base_file_url(base_file_url)
        application = builder.build()
        application.add_handler(CommandHandler(["start", "help"], self.on_help))
        application.add_handler(MessageHandler(filters.PHOTO | filters.Document.ALL, self.on_image))
        application.add_handler(MessageHandler(filters.ALL & ~filters.COMMAND, self.on_help))
        application.add_error_handler(self.on_error)
        return application

    async def _started(self, _: Any) -> None:
        await self.core.start()

    async def _stopped(self, _: Any) -> None:
        await self.core.stop()

    def _allowed(self, update: Any) -> bool:
        chat = update.effective_chat
        return not self.allowed or (chat is not None and chat.id in self.allowed)

    async def on_help(self, update: Any, _: Any) -> None:
        if update.effective_message is not None and self._allowed(update):
            await update.effective_message.reply_text(HELP)

    async def on_image(self, update: Any, context: Any) -> None:
        message = update.effective_message
        if message is None or not self._allowed(update):
            return
        item = message.photo[-1] if message.photo else message.document
        kind = "photo" if message.photo else "document"
        try:
            data = await self._download(context.bot, item)
            analysis = await self.core.analyse(data, Options(method=self.method))
            png = await asyncio.to_thread(results.overlay_png, analysis.record, analysis.record.maps[0],
                                          max_side=self.core.limits.max_side)
        except Refused as refused:
            log.info("refused a %s (%d)", kind, refused.status)
            await message.reply_text(f"Sorry: {refused.message}")
            return
        await message.reply_photo(photo=png, caption=caption(analysis))
        log.info("answered a %s", kind)

    async def _download(self, bot: Any, item: Any) -> bytes:
        limit = self.core.limits.max_bytes
        if item.file_size and item.file_size > limit:  # refused before a byte is fetched
            raise Refused(413, f"the file is larger than the upload limit ({limit // 1024} KiB)")
        file = await bot.get_file(item.file_id)
        if file.file_size and file.file_size > limit:
            raise Refused(413, f"the file is larger than the upload limit ({limit // 1024} KiB)")
        data = bytes(await file.download_as_bytearray())  # in memory: never a file of its own
        if len(data) > limit:
            raise Refused(413, f"the file is larger than the upload limit ({limit // 1024} KiB)")
        return data

    async def on_error(self, update: Any, context: Any) -> None:
        """Log a failure by its type only (a message could quote what was sent), tell the sender."""
        log.error("a message could not be answered (%s)", type(context.error).__name__)
        message = getattr(update, "effective_message", None)
        if message is not None:
            try:
                await message.reply_text("Sorry: the bot failed on this message.")
            except Exception:  # noqa: BLE001 - the network is what failed: nothing more to tell
                pass
