"""``rewardlab collect serve``: one uvicorn process serving a project's web app.

With ``selection: active`` the background trainer runs in the same process (started and stopped
with the app); with ``selection: random`` there is nothing to train and items come in random order.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from rewardlab.serve.auth import is_loopback


def build_app(project_dir: str | Path, db: str | None = None, *, seed: int | None = None) -> tuple[Any, Any]:
    """The web app of the project in ``project_dir`` and its store (``db`` overrides the project's URL)."""
    from rewardlab.collect.active import ActiveSelector, RandomSelector
    from rewardlab.collect.app import create_app
    from rewardlab.collect.project import Project

    project, store = Project.open(project_dir, db)
    config = project.config
    if config.selection == "random":
        return create_app(project, store, RandomSelector(), seed=seed), store
    from rewardlab.collect.background import BackgroundTrainer

    selector = ActiveSelector(config.random_share, config.strategy)
    return create_app(project, store, selector, BackgroundTrainer(project, store, selector), seed=seed), store


def exposure_warning(host: str) -> str | None:
    """What to tell the owner who serves beyond this machine; None on loopback."""
    if is_loopback(host):
        return None
    return (
        f"serving on {host}: login links and labels travel unencrypted; put the app behind an HTTPS "
        "reverse proxy, or bind to 127.0.0.1"
    )


def serve_project(project_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8100, db: str | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop the trainer, then the server)."""
    import uvicorn

    from rewardlab.serve.limits import uvicorn_settings

    if not 0 <= port <= 65535:
        raise ValueError(f"--port: {port} is not a port number (0 to 65535)")
    app, store = build_app(project_dir, db)
    warning = exposure_warning(host)
    if warning:
        warnings.warn(warning, stacklevel=2)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on", **uvicorn_settings(5.0))
    finally:
        store.close()
