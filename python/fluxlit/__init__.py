"""FluxLit: a FastAPI app and Streamlit pages served by one native binary on one port."""

from ._app import FluxLit, PageParameter, PageRecord
from ._client import ApiClient
from ._errors import ClientDisconnected

__version__ = "0.1.0"

__all__ = [
    "ApiClient",
    "ClientDisconnected",
    "FluxLit",
    "PageParameter",
    "PageRecord",
    "__version__",
]
