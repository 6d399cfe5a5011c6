"""Generated static files: the front-end page, its hashed bundle, the icon and media files.

Everything is deterministic, so tests can compare bytes that passed through a proxy with
what the stand-in serves.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import mimetypes
import random
import re
from dataclasses import dataclass

# A media file's bytes repeat a block of this size, so serving a large file costs no memory.
_MEDIA_BLOCK_BYTES = 64 * 1024
# Media names may carry their size: "clip-1048576.mp4" is 1 MiB. Larger sizes are rejected.
MAX_MEDIA_BYTES = 1 << 30
_SIZED_NAME = re.compile(r"-(\d+)\.[A-Za-z0-9]+$")
MEDIA_NAME = re.compile(r"^[A-Za-z0-9._-]+$")

# The smallest valid PNG: one transparent pixel.
FAVICON_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA"
    "AABJRU5ErkJggg=="
)


@dataclass(frozen=True)
class Asset:
    """A static file with its precomputed gzip form and entity tag."""

    body: bytes
    gzipped: bytes
    etag: str
    content_type: str


def make_asset(body: bytes, content_type: str) -> Asset:
    digest = hashlib.sha256(body).hexdigest()
    return Asset(
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0),
        etag=f'"{digest[:32]}"',
        content_type=content_type,
    )


def make_bundle(size: int) -> Asset:
    """Generate a JavaScript file of `size` bytes of pseudo-random string literals."""
    generator = random.Random(1)
    lines = []
    total = 0
    index = 0
    while total < size:
        literal = base64.b64encode(generator.randbytes(48)).decode()
        line = f'window.__standin_{index} = "{literal}";\n'
        lines.append(line)
        total += len(line)
        index += 1
    body = "".join(lines).encode()[:size]
    return make_asset(body, "application/javascript")


def bundle_name(bundle: Asset) -> str:
    """Return the hashed file name, as Streamlit's build names its main bundle."""
    return f"main.{bundle.etag.strip(chr(34))[:8]}.js"


def make_index(bundle: Asset) -> bytes:
    """Return the single-page app's HTML; every URL in it is relative, as in Streamlit."""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '<meta charset="UTF-8" />\n'
        '<link rel="shortcut icon" href="./favicon.png" />\n'
        "<title>Streamlit</title>\n"
        f'<script defer src="./static/js/{bundle_name(bundle)}"></script>\n'
        "</head>\n"
        "<body>\n"
        "<noscript>This app needs JavaScript.</noscript>\n"
        '<div id="root"></div>\n'
        "</body>\n"
        "</html>\n"
    ).encode()


def media_size(name: str, default_size: int) -> int:
    """Return the size named in `name` ("x-1024.mp4" is 1024 bytes), else `default_size`."""
    match = _SIZED_NAME.search(name)
    return int(match.group(1)) if match else default_size


def media_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def media_block(name: str) -> bytes:
    """Return the block that the file `name` repeats; its bytes depend only on the name."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return random.Random(seed).randbytes(_MEDIA_BLOCK_BYTES)


def media_slice(block: bytes, start: int, end: int) -> bytes:
    """Return bytes [start, end) of the file that repeats `block`."""
    parts = []
    position = start
    while position < end:
        offset = position % len(block)
        take = min(len(block) - offset, end - position)
        parts.append(block[offset : offset + take])
        position += take
    return b"".join(parts)


def media_bytes(name: str, size: int) -> bytes:
    """Return the whole content of the media file `name` of `size` bytes, for tests."""
    return media_slice(media_block(name), 0, size)
