#include "cli/project_templates.hpp"

#include <algorithm>
#include <map>

namespace fluxlit::cli {

namespace {

constexpr std::size_t max_name_length = 64;

// The app module, assembled from the parts below. The API-heavy profile adds a router, its
// models and a page that uses them.
constexpr std::string_view app_docstring =
    R"("""{{title}}: a FluxLit app with an API under /api and Streamlit pages that call it.

Serve it from this directory with `fluxlit run` (fluxlit.toml names the target, app:app).
"""

from __future__ import annotations

from typing import Any

from fluxlit import ApiClient, FluxLit
)";

constexpr std::string_view router_import = R"(
from routers import items
)";

constexpr std::string_view app_object = R"(
app = FluxLit("{{title}}")
)";

constexpr std::string_view router_include = R"(app.api.include_router(items.router)
)";

constexpr std::string_view hello_route_and_home_page = R"(

@app.api.get("/hello")
async def hello(name: str = "world") -> dict[str, str]:
    """Greet `name`."""
    return {"message": f"Hello, {name}!"}


@app.page("/", title="Home", icon="👋")
def home(st: Any, client: ApiClient) -> None:
    """Ask the API for a greeting and show it."""
    st.title("{{title}}")
    name = st.text_input("Name", "world")
    st.write(client.get_json("/hello", params={"name": name})["message"])
)";

constexpr std::string_view items_page = R"(

@app.page("/items", title="Items", icon="📦")
def items_page(st: Any, client: ApiClient) -> None:
    """List the items and add new ones through the API."""
    st.header("Items")
    with st.form("add_item"):
        name = st.text_input("Name")
        price_cents = st.number_input("Price in cents", min_value=0, step=1)
        submitted = st.form_submit_button("Add")
    if submitted:
        response = client.post("/items", json={"name": name, "price_cents": int(price_cents)})
        if response.status_code == 201:
            st.success(f"Added item {response.json()['id']}.")
        else:
            st.error(f"The API rejected the item ({response.status_code}): {response.text}")
    st.dataframe(client.get_json("/items"))
)";

constexpr std::string_view models_py = R"("""The data models of the items API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ItemCreate(BaseModel):
    """The fields a client sends to create an item."""

    name: str = Field(..., min_length=1, max_length=100)
    price_cents: int = Field(..., ge=0)


class Item(ItemCreate):
    """A stored item."""

    id: int
)";

constexpr std::string_view routers_init_py = R"("""The API's routers, one module per resource."""
)";

constexpr std::string_view items_router_py =
    R"("""The /items routes. Items live in memory for the life of the process."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from models import Item, ItemCreate

router = APIRouter(prefix="/items", tags=["items"])

_items: dict[int, Item] = {}


@router.get("", response_model=list[Item])
async def list_items() -> list[Item]:
    return list(_items.values())


@router.get("/{item_id}", response_model=Item)
async def get_item(item_id: int) -> Item:
    item = _items.get(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return item


@router.post("", response_model=Item, status_code=status.HTTP_201_CREATED)
async def create_item(body: ItemCreate) -> Item:
    item = Item(id=max(_items, default=0) + 1, name=body.name, price_cents=body.price_cents)
    _items[item.id] = item
    return item
)";

constexpr std::string_view test_header =
    R"("""Tests that run the app in-process through fluxlit.testing, without a server."""

from __future__ import annotations

from fluxlit.testing import TestClient, run_page

from app import app


def test_hello_greets_by_name() -> None:
    with TestClient(app) as client:
        response = client.get("/hello", params={"name": "Ada"})
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, Ada!"}


def test_home_page_shows_greeting() -> None:
    st = run_page(app, "/")
    assert st.find("title")[0].args == ("{{title}}",)
    assert st.find("write")[0].args == ("Hello, world!",)
)";

constexpr std::string_view items_tests = R"(

def test_created_item_can_be_read() -> None:
    with TestClient(app) as client:
        created = client.post("/items", json={"name": "Lamp", "price_cents": 1999})
        assert created.status_code == 201
        item_id = created.json()["id"]
        response = client.get(f"/items/{item_id}")
    assert response.status_code == 200
    assert response.json() == {"id": item_id, "name": "Lamp", "price_cents": 1999}


def test_item_with_negative_price_is_rejected() -> None:
    with TestClient(app) as client:
        response = client.post("/items", json={"name": "Lamp", "price_cents": -1})
    assert response.status_code == 422


def test_items_page_lists_items() -> None:
    st = run_page(app, "/items")
    assert st.find("header")[0].args == ("Items",)
    assert len(st.find("dataframe")) == 1
)";

constexpr std::string_view conftest_py =
    R"(# pytest puts the directory of this file on sys.path, so the tests can import app.py.
)";

constexpr std::string_view fluxlit_toml =
    R"(# FluxLit settings. `fluxlit config` lists every key with its value and source.
target = "app:app"
port = 8000
)";

constexpr std::string_view requirements_txt = R"(fastapi>=0.90
streamlit>=1.36
httpx
)";

constexpr std::string_view gitignore = R"(__pycache__/
.pytest_cache/
.venv/
.fluxlit/
)";

constexpr std::string_view readme_md = R"md(# {{title}}

A FluxLit app: a FastAPI API under `/api` and Streamlit pages, served by one binary on one port.

    fluxlit run       # the UI at http://127.0.0.1:8000/, the API at http://127.0.0.1:8000/api/hello
    fluxlit doctor    # checks the interpreter, the packages, the app and the settings

The tests import the `fluxlit` package, which ships with the binary. Run them with the
interpreter that serves the app: the active virtual environment's `python`, else Debian's
`/usr/bin/python3` (`fluxlit config` shows it as `interpreter`):

    PYTHONPATH="$(fluxlit version --package-dir)" /usr/bin/python3 -m pytest
)md";

constexpr std::string_view k8s_deployment_yaml =
    R"(# One {{name}} pod serving the API and the Streamlit UI on port 8000. FluxLit answers the
# probes itself: /api/healthz while the process lives, /api/readyz once the Python loop and
# Streamlit both answer.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{name}}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {{name}}
  template:
    metadata:
      labels:
        app: {{name}}
    spec:
      # The drain (shutdown_grace_ms, 20 s by default) and Streamlit's stop must fit in here.
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{name}}
          image: {{name}}:latest
          ports:
            - name: http
              containerPort: 8000
          livenessProbe:
            httpGet:
              path: /api/healthz
              port: http
            periodSeconds: 10
          readinessProbe:
            httpGet:
              path: /api/readyz
              port: http
            periodSeconds: 5
            failureThreshold: 3
---
apiVersion: v1
kind: Service
metadata:
  name: {{name}}
spec:
  selector:
    app: {{name}}
  ports:
    - name: http
      port: 80
      targetPort: http
)";

bool is_name_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// Replaces every "{{key}}" of `text` with its value in `values`.
std::string render(std::string_view text, const std::map<std::string, std::string>& values) {
  std::string result(text);
  for (const auto& [key, value] : values) {
    const std::string placeholder = "{{" + key + "}}";
    for (std::size_t at = result.find(placeholder); at != std::string::npos;
         at = result.find(placeholder, at + value.size())) {
      result.replace(at, placeholder.size(), value);
    }
  }
  return result;
}

// Lower-cases the name for Kubernetes object names and image names, which allow no capitals,
// "_" or ".".
std::string resource_name(std::string_view name) {
  std::string lowered;
  for (const char c : name) {
    if (c >= 'A' && c <= 'Z') {
      lowered += static_cast<char>(c - 'A' + 'a');
    } else {
      lowered += (c == '_' || c == '.') ? '-' : c;
    }
  }
  return lowered;
}

std::string app_module(project_profile profile) {
  const bool with_router = profile == project_profile::api_heavy;
  std::string text(app_docstring);
  if (with_router) {
    text += router_import;
  }
  text += app_object;
  if (with_router) {
    text += router_include;
  }
  text += hello_route_and_home_page;
  if (with_router) {
    text += items_page;
  }
  return text;
}

}  // namespace

std::string title_from_name(std::string_view name) {
  std::string title;
  bool word_start = true;
  for (const char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      word_start = true;
      continue;
    }
    if (word_start && !title.empty()) {
      title += ' ';
    }
    title += (word_start && c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    word_start = false;
  }
  return title;
}

std::string check_project_name(std::string_view name) {
  if (name.empty() || name.size() > max_name_length) {
    return "it must have 1 to " + std::to_string(max_name_length) + " characters";
  }
  if (!std::all_of(name.begin(), name.end(), is_name_character)) {
    return "it may contain only letters, digits, \".\", \"_\" and \"-\"";
  }
  const char first = name.front();
  if (first == '.' || first == '_' || first == '-') {
    return "it must start with a letter or a digit";
  }
  return "";
}

std::vector<project_file> project_files(std::string_view name, project_profile profile) {
  const std::map<std::string, std::string> values{{"title", title_from_name(name)},
                                                  {"name", resource_name(name)}};
  std::vector<project_file> files{
      {"app.py", render(app_module(profile), values)},
      {"fluxlit.toml", std::string(fluxlit_toml)},
      {"requirements.txt", std::string(requirements_txt)},
      {"conftest.py", std::string(conftest_py)},
      {"README.md", render(readme_md, values)},
      {".gitignore", std::string(gitignore)},
  };
  std::string tests = render(test_header, values);
  if (profile == project_profile::api_heavy) {
    tests += items_tests;
    files.push_back({"models.py", std::string(models_py)});
    files.push_back({"routers/__init__.py", std::string(routers_init_py)});
    files.push_back({"routers/items.py", std::string(items_router_py)});
  }
  files.push_back({"tests/test_app.py", tests});
  if (profile == project_profile::deploy) {
    files.push_back({"k8s/deployment.yaml", render(k8s_deployment_yaml, values)});
  }
  return files;
}

}  // namespace fluxlit::cli
