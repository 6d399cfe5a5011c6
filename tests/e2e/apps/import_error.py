"""An app module whose import fails, as one with a missing dependency does."""

from __future__ import annotations

import fluxlit_e2e_missing_dependency  # noqa: F401

app = None
