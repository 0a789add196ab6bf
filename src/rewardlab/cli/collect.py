"""``rewardlab collect``: a preference-collection project (init, add-items, add-annotator, export, serve...)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from rewardlab.cli.base import app, note, out, user_errors

collect_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Collect preference labels from people: a project, its items, annotators, the web app, the export.",
)
app.add_typer(collect_app, name="collect")

ProjectArgument = Annotated[Path, typer.Argument(help="The project folder")]
SkipBadRows = Annotated[
    bool, typer.Option(help="Leave out bad item rows (counted, the first shown) instead of stopping")
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (sqlite:///PATH or postgresql://...); default: the project's"),
]


@collect_app.command("init")
@user_errors
def init(
    project: ProjectArgument,
    items: Annotated[Path, typer.Option(help="JSONL: prompt and replies (2+), or chosen/rejected, or response_a/b")],
    kind: Annotated[str, typer.Option(help="pairwise, ranking, rating or attributes")] = "pairwise",
    attributes: Annotated[
        str | None, typer.Option(help="Kind attributes: comma-separated names (default helpfulness,harmlessness)")
    ] = None,
    title: Annotated[str | None, typer.Option(help="The question at the top of the annotator page")] = None,
    guidelines: Annotated[Path | None, typer.Option(help="A text or markdown file shown to annotators")] = None,
    selection: Annotated[str, typer.Option(help="active (ensemble uncertainty) or random")] = "active",
    strategy: Annotated[
        str, typer.Option(help="Active selection's measure: disagreement, bald, batch-information, epig or flip")
    ] = "disagreement",
    labels_per_item: Annotated[int, typer.Option(help="Annotators asked about each item")] = 1,
    encoder: Annotated[str, typer.Option(help="Active selection's encoder: minilm, smollm2, a folder")] = "minilm",
    encoder_max_length: Annotated[int, typer.Option(help="Tokens the encoder reads (e.g. 256 for smollm2)")] = 128,
    skip_bad_rows: SkipBadRows = False,
    db: DbOption = None,
    overwrite: Annotated[bool, typer.Option(help="Reuse a non-empty folder, replacing its project")] = False,
) -> None:
    """Create a project: its folder, settings, secret and database, with the items loaded; prints the
    owner's login link (it opens the dashboard; shown once)."""
    from rewardlab.collect.items import read_items
    from rewardlab.collect.project import DEFAULT_ATTRIBUTES, ProjectConfig, create_project, login_link

    names = [a.strip() for a in attributes.split(",") if a.strip()] if attributes else []
    if kind == "attributes" and not names:
        names = list(DEFAULT_ATTRIBUTES)
    if names and kind != "attributes":
        raise ValueError("--attributes is for --kind attributes")
    text = ""
    if guidelines is not None:
        if not guidelines.is_file():
            raise FileNotFoundError(f"--guidelines: no such file: {guidelines}")
        text = guidelines.read_text(encoding="utf-8")
    config = ProjectConfig(
        kind=kind,
        guidelines=text,
        attributes=names,
        selection=selection,
        strategy=strategy,
        labels_per_item=labels_per_item,
        encoder=encoder,
        encoder_max_length=encoder_max_length,
        db=db,
    )
    if title:
        config.title = title
    problems = config.errors()
    if problems:
        raise ValueError("; ".join(problems))
    skipped: list[str] = []
    loaded = read_items(
        items, kind, skipped, skip_bad_rows=skip_bad_rows
    )  # before anything is created: a bad file leaves no half project
    created, store, token = create_project(project, config, overwrite=overwrite)
    added = store.add_items(loaded)
    store.close()
    out.print(f"project {created.path}: {kind}, {added} items ({len(loaded) - added} repeated keys skipped)")
    _report_skipped(skipped)
    out.print(f"owner login (dashboard; keep it private, it is shown once): {login_link(token)}", highlight=False)


@collect_app.command("add-items")
@user_errors
def add_items(
    project: ProjectArgument,
    items: Annotated[Path | None, typer.Option(help="JSONL items file (as for init)")] = None,
    prompts: Annotated[Path | None, typer.Option(help="Prompts to generate replies for (JSONL or one a line)")] = None,
    policy: Annotated[str | None, typer.Option(help="With --prompts: smollm2 or a causal LM folder")] = None,
    replies: Annotated[int, typer.Option(help="With --policy: replies generated per prompt")] = 2,
    max_new_tokens: Annotated[int, typer.Option(help="With --policy: tokens per reply at most")] = 128,
    temperature: Annotated[
        float, typer.Option(help="With --policy: sampling temperature (lower: more coherent, less varied replies)")
    ] = 0.7,
    seed: Annotated[int, typer.Option(help="With --policy: sampling seed")] = 0,
    skip_bad_rows: SkipBadRows = False,
    db: DbOption = None,
) -> None:
    """Add items from a file, or generate them with a policy for given prompts (safe while the server runs)."""
    from rewardlab.collect.items import policy_items, read_items, read_prompts
    from rewardlab.collect.project import Project

    if (items is None) == (prompts is None):
        raise ValueError("give either --items FILE or --prompts FILE --policy NAME")
    if prompts is not None and policy is None:
        raise ValueError("--prompts needs --policy (smollm2 or a causal LM folder)")
    opened, store = Project.open(project, db)
    kind = opened.config.kind
    skipped: list[str] = []
    if items is not None:
        new = read_items(items, kind, skipped, skip_bad_rows=skip_bad_rows)
    else:
        if kind == "pairwise" and replies != 2:
            raise ValueError(f"--replies: a pairwise project needs 2 replies per item (got {replies})")
        if policy is None or prompts is None:  # checked above; narrows the types
            raise ValueError("--prompts needs --policy")
        new = policy_items(
            policy,
            read_prompts(prompts),
            replies=replies,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
        )
    added = store.add_items(new)
    total = store.item_count()
    store.close()
    out.print(f"{added} items added ({len(new) - added} already there); {total} items in {opened.path}")
    _report_skipped(skipped)


def _report_skipped(skipped: list[str]) -> None:
    if skipped:
        note(f"{len(skipped)} rows left out (bad, or two identical replies that ask nothing); the first: {skipped[0]}")


@collect_app.command("add-annotator")
@user_errors
def add_annotator(
    project: ProjectArgument,
    name: Annotated[str, typer.Argument(help="The annotator's name (unique in the project)")],
    db: DbOption = None,
) -> None:
    """Add an annotator and print their personal login link (shown once: only a hash of it is stored)."""
    link = _login_link(project, db, lambda store: store.add_annotator(name))
    out.print(f"login link for {name.strip()} (send it privately; shown once): {link}", highlight=False)


@collect_app.command("new-link")
@user_errors
def new_link(
    project: ProjectArgument,
    name: Annotated[str, typer.Argument(help="An annotator's name, or owner for the dashboard's link")],
    db: DbOption = None,
) -> None:
    """Print a new login link for an annotator or the owner (a lost link, or imported annotators, who
    have none); the old link stops working."""
    link = _login_link(project, db, lambda store: store.reset_token(name.strip()))
    out.print(f"new login link for {name.strip()} (the old one no longer works): {link}", highlight=False)


def _login_link(project: Path, db: str | None, issue_token: Callable[[Any], str]) -> str:
    """The login link of the token ``issue_token(store)`` writes into ``project``'s store."""
    from rewardlab.collect.project import Project, login_link

    _, store = Project.open(project, db)
    try:
        return login_link(issue_token(store))
    finally:
        store.close()


@collect_app.command("serve")
@user_errors
def serve(
    project: ProjectArgument,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8100,
    db: DbOption = None,
) -> None:
    """Serve the annotator pages (/task) and the owner's dashboard (/dashboard) until Ctrl-C. People log in
    with the links of `collect init` (owner) and `collect add-annotator`. With `selection: active` the reward
    model ensemble is refitted in the background as labels arrive."""
    from rewardlab.collect.server import serve_project

    out.print(f"serving {project} at http://{host}:{port}/ (Ctrl-C stops)", highlight=False)
    serve_project(project, host=host, port=port, db=db)


@collect_app.command("export")
@user_errors
def export(
    project: ProjectArgument,
    output: Annotated[Path, typer.Option(help="Where to write the labels (JSONL rewardlab reads)")],
    fmt: Annotated[
        str, typer.Option("--format", help="rewardlab (JSONL records), argilla (v2 records JSON) or label-studio")
    ] = "rewardlab",
    db: DbOption = None,
) -> None:
    """Write the labels as rewardlab preference records (pairs with strength and tie, k-wise rankings, or
    pairs with ratings), annotator names kept; skips are left out. ``--format argilla`` or ``label-studio``
    writes every item with its labels (skips and reasons included) as JSON those tools import."""
    from rewardlab.collect.export import export_labels
    from rewardlab.collect.interop import FORMATS, export_records, write_json
    from rewardlab.collect.project import Project
    from rewardlab.destinations import check_file_destination

    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    opened, store = Project.open(project, db)
    check_file_destination(output)
    if fmt != "rewardlab":
        items, labels = store.items(), store.labels()
        store.close()
        write_json(output, export_records(items, labels, fmt, opened.config.kind, opened.config.attributes))
        out.print(f"{len(items)} items with {len(labels)} labels ({fmt}) → {output}")
        return
    rows = export_labels(store, opened.config.kind, output, opened.config.attributes)
    labels = store.labels()
    store.close()
    skipped = sum(label.skipped for label in labels)
    out.print(f"{rows} rows from {len(labels) - skipped} labels ({skipped} skips left out) → {output}")


@collect_app.command("import")
@user_errors
def import_labels(
    project: ProjectArgument,
    file: Annotated[Path, typer.Argument(help="An Argilla records JSON or Label Studio tasks JSON export")],
    source: Annotated[str, typer.Option("--from", help="argilla or label-studio")],
    users: Annotated[
        Path | None, typer.Option(help="JSON object mapping the file's user ids to annotator names")
    ] = None,
    db: DbOption = None,
) -> None:
    """Add the items of an Argilla or Label Studio export, and their labels under the annotators' names
    (annotators new to the project are added without a login link); importing twice adds nothing."""
    import json

    from rewardlab.collect.interop import import_into, read_import
    from rewardlab.collect.project import Project

    names = None
    if users is not None:
        if not users.is_file():
            raise FileNotFoundError(f"--users: no such file: {users}")
        names = json.loads(users.read_text(encoding="utf-8"))
        if not isinstance(names, dict):
            raise ValueError(f"--users: {users} must hold a JSON object of user id → name")
    opened, store = Project.open(project, db)
    try:
        imported = read_import(file, source, opened.config.kind, opened.config.attributes, names)
        new_items, new_labels = import_into(store, imported)
    finally:
        store.close()
    out.print(
        f"{new_items} new items ({len(imported.items) - new_items} already there), {new_labels} new labels "
        f"({len(imported.labels) - new_labels} already there) from {file}"
    )
