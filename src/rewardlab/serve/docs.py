"""``/docs`` from files on this machine: FastAPI's Swagger UI page loads its script and style from
a CDN, so offline, or behind a firewall, the page stays blank.

The Swagger UI files come with the ``swagger-ui-py`` package; they are found without importing it
(its import pulls in template and YAML machinery the server does not use). Without the package
``/docs`` is a plain page that points to ``/openapi.json``.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def swagger_ui_files() -> Path | None:
    """The folder of Swagger UI's ``swagger-ui-bundle.js`` and ``swagger-ui.css``, if installed."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() and (folder / "swagger-ui.css").is_file() else None


def add_local_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (create the app with ``docs_url=None, redoc_url=None``) and its files locally."""
    files = swagger_ui_files()
    if files is not None:
        app.mount(ASSETS, StaticFiles(directory=files), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        schema = f"{root}{app.openapi_url}"
        if files is None:
            title = html.escape(app.title)
            body = f'<h1>{title}</h1><p>The API schema: <a href="{schema}">{schema}</a></p>'
            return HTMLResponse(f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>")
        return get_swagger_ui_html(
            openapi_url=schema,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
        )
