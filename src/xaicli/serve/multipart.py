"""Reading a ``multipart/form-data`` body (RFC 7578) into memory, within the upload limits.

Starlette's own form parser spools a file part larger than 1 MiB to the *system's* temporary
folder under a name of its choosing; an upload must exist nowhere but in the service's own
folder (written there only once its content has been checked, and for DICOM only once
de-identified). So the body is streamed through python-multipart's parser here: at most
``max_bytes`` per part (413 as soon as a part grows past it, without reading the rest), a few
parts, and the client's file names read by nobody.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from xaicli.serve.errors import Refused

#: parts a request may have (image, region, and a few form fields a browser adds)
MAX_PARTS = 8
#: bytes of headers and of a non-file form field
MAX_FIELD = 64 * 1024


def _disposition_name(value: bytes) -> tuple[str, bool]:
    """The form field's name and whether the part is a file; the file name itself is dropped."""
    from python_multipart.multipart import parse_options_header

    _, params = parse_options_header(value)
    name = params.get(b"name", b"").decode("utf-8", "replace")
    return name, b"filename" in params


async def read_form(content_type: str | None, content_length: str | None, body: AsyncIterator[bytes],
                    max_bytes: int) -> dict[str, bytes]:
    """The parts of a multipart body as ``{field name: bytes}`` (the first of each name)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise Refused(415, "send the image as multipart/form-data in a field named 'image'")
    limit = MAX_PARTS * MAX_FIELD + 2 * max_bytes  # the image, a region, the framing
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise Refused(413, f"the request is larger than the upload limit ({max_bytes // 1024} KiB per file)")

    parts: dict[str, bytes] = {}
    state = {"header": b"", "value": b"", "headers": {}, "name": "", "file": False, "data": bytearray(), "count": 0}

    def on_part_begin() -> None:
        state.update(headers={}, name="", file=False, data=bytearray())
        state["count"] += 1
        if state["count"] > MAX_PARTS:
            raise Refused(400, f"a request may have at most {MAX_PARTS} form fields")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]
        if len(state["value"]) > MAX_FIELD:
            raise Refused(400, "a form field's header is too long")

    def on_header_end() -> None:
        state["headers"][state["header"].lower()] = state["value"]
        state["header"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        state["name"], state["file"] = _disposition_name(state["headers"].get(b"content-disposition", b""))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = state["data"]
        chunk += data[start:end]
        cap = max_bytes if state["file"] else MAX_FIELD
        if len(chunk) > cap:
            what = f"'{state['name']}'" if state["name"] in ("image", "region") else "a form field"
            raise Refused(413, f"{what} is larger than the upload limit ({cap // 1024} KiB)")

    def on_part_end() -> None:
        if state["name"] and state["name"] not in parts:
            parts[state["name"]] = bytes(state["data"])
        state["data"] = bytearray()

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
    })
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise Refused(413, f"the request is larger than the upload limit ({max_bytes // 1024} KiB per file)")
            parser.write(chunk)
        parser.finalize()
    except Refused:
        raise
    except Exception:  # noqa: BLE001 - python-multipart's errors quote the body: say only what is wrong
        raise Refused(400, "the multipart body is malformed") from None
    return parts
