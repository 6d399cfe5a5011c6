"""A FastAPI app whose import fails while the file named by FLAG_GUARDED_APP_FLAG exists.

It stands for an app whose code or environment broke after the server started, so that a
worker started later cannot import it.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

flag = os.environ.get("FLAG_GUARDED_APP_FLAG")
if flag and Path(flag).exists():
    raise RuntimeError(f"e2e-flag: {flag} exists, so this import fails")

app = FastAPI()


@app.get("/pid")
async def pid() -> dict[str, int]:
    return {"pid": os.getpid()}
