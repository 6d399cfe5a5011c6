"""Configuration options of the stand-in: `--section.option` flags over STREAMLIT_* variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

# Options that the stand-in acts on, with their defaults. Defaults follow Streamlit 1.39 unless
# a comment states otherwise. The value type of each default decides how text is parsed.
DEFAULTS: dict[str, Any] = {
    "server.port": 8501,
    # The stand-in binds loopback by default, while Streamlit binds every interface.
    "server.address": "127.0.0.1",
    "server.headless": False,
    "server.baseUrlPath": "",
    "server.enableCORS": True,
    "server.enableXsrfProtection": True,
    "server.enableWebsocketCompression": False,
    "server.maxUploadSize": 200,  # MB
    "server.maxMessageSize": 200,  # MB
    # Seconds between WebSocket pings; the stand-in's own choice.
    "server.websocketPingInterval": 15,
    "browser.gatherUsageStats": True,
    "browser.serverAddress": "localhost",
    "browser.serverPort": 8501,
    "global.developmentMode": False,
    # Options of the stand-in itself.
    "standin.healthDelayMs": 0,  # /_stcore/health returns 503 for this long after start
    "standin.bundleBytes": 1 << 20,  # size of the generated main JavaScript bundle
    "standin.mediaBytes": 1 << 20,  # size of a /media file whose name carries no size
}

_OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)+$")


class ConfigError(ValueError):
    """An option name or value that the stand-in cannot use."""


def is_option_name(name: str) -> bool:
    """Whether `name` has the `section.option` form."""
    return bool(_OPTION_NAME.match(name))


def environment_name(option: str) -> str:
    """Return the variable that sets `option`.

    For example server.baseUrlPath is set by STREAMLIT_SERVER_BASE_URL_PATH.
    """
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", option.replace(".", "_"))
    return "STREAMLIT_" + snake.upper()


def parse_value(option: str, text: str) -> Any:
    """Convert `text` to the type of the option's default; unknown options stay text."""
    default = DEFAULTS.get(option)
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"invalid value {text!r} for --{option}: expected true or false")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            message = f"invalid value {text!r} for --{option}: expected an integer"
            raise ConfigError(message) from None
    return text


def resolve(flags: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge defaults, STREAMLIT_* variables and flags; flags win."""
    environ = os.environ if environ is None else environ
    options = dict(DEFAULTS)
    for option in DEFAULTS:
        variable = environment_name(option)
        if variable in environ:
            options[option] = parse_value(option, environ[variable])
    for option, text in flags.items():
        options[option] = parse_value(option, text)
    if options["global.developmentMode"] and "server.port" in flags:
        raise ConfigError(
            "--server.port does not work when global.developmentMode is true; set "
            "STREAMLIT_GLOBAL_DEVELOPMENT_MODE=false"
        )
    options["server.baseUrlPath"] = normalize_base_path(str(options["server.baseUrlPath"]))
    return options


def normalize_base_path(text: str) -> str:
    """Return "" for no base path, else "/a/b" with one leading and no trailing slash."""
    stripped = text.strip("/")
    return f"/{stripped}" if stripped else ""
