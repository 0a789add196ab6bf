"""``rewardlab data``: commands that inspect preference datasets (``data check``), build user groups
from them (``data groups``), generate step-labelled reasoning chains (``data chains``) and build policy
discriminator pairs (``data polar-pairs``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import data_app, out, user_errors
from rewardlab.cli.options import ColumnsOption, DataArgument, SkipOption


@data_app.command("check")
@user_errors
def data_check(
    path: DataArgument,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Validate a dataset and summarise it: rows, fields, lengths, ties, subsets."""
    from rewardlab.data import ColumnMap, load_preferences, summarize
    from rewardlab.data.summary import summary_tables

    loaded = load_preferences(
        None if path == "default" else path,
        columns=ColumnMap.parse(columns) if columns else None,
        skip_bad_rows=skip_bad_rows,
    )
    summary = summarize(loaded)
    if as_json:
        out.print_json(data=summary)
        return
    counts, lengths, subsets = summary_tables(summary)
    out.print(counts, lengths)
    if subsets is not None:
        out.print(subsets)
    for reason in summary["skipped"]["sample"]:
        out.print(f"skipped: {reason}", markup=False, highlight=False)


@data_app.command("groups")
@user_errors
def data_groups(
    path: DataArgument,
    output: Annotated[Path, typer.Option(help="JSONL to write: every row plus annotator, annotator_group")],
    aspect: Annotated[str, typer.Option(help="What the minority disagrees on: length or refusal")] = "length",
    minority: Annotated[float, typer.Option(help="Share of the users in the minority group")] = 0.3,
    users: Annotated[int, typer.Option(help="Number of users; each pair goes to one of them")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the users' groups and of the pairs' dealing")] = 0,
    threshold: Annotated[
        float, typer.Option(help="length: replies differ when the longer is more than this share longer")
    ] = 0.2,
    prefer: Annotated[str, typer.Option(help="length: the reply the minority prefers, shorter or longer")] = "shorter",
    opposed: Annotated[
        bool, typer.Option(help="length: the majority prefers the other side (opposite preferences on the aspect)")
    ] = False,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
) -> None:
    """Two groups of users from real pairs: the majority keeps the human label (or, --opposed, prefers the
    other side), the minority prefers the shorter (or, --prefer longer, the longer) reply (length) or the
    one that does not refuse (refusal) where the replies differ in it."""
    from rewardlab.data import ColumnMap
    from rewardlab.data.user_groups import build_user_groups

    built = build_user_groups(
        path,
        output,
        aspect=aspect,
        minority=minority,
        users=users,
        seed=seed,
        threshold=threshold,
        prefer=prefer,
        opposed=opposed,
        columns=ColumnMap.parse(columns) if columns else None,
        skip_bad_rows=skip_bad_rows,
    )
    out.print(built.summary(), markup=False, highlight=False)


@data_app.command("chains")
@user_errors
def data_chains(
    output: Annotated[Path, typer.Option(help="JSONL to write: prompt, steps, labels (one per step), answer")],
    count: Annotated[int, typer.Option(help="Number of chains, each for a new problem")] = 1000,
    wrong_fraction: Annotated[float, typer.Option(help="Share of the chains with one corrupted step")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the problems and the corruptions")] = 0,
    level: Annotated[str, typer.Option(help="simple (two operations) or multi-step (three or four)")] = "multi-step",
    incorrect: Annotated[
        int | None,
        typer.Option(help="Write RewardMATH rows instead: each problem's correct chain against this many wrong ones"),
    ] = None,
) -> None:
    """Reasoning chains with exact step labels for process reward models: arithmetic and unit-conversion
    word problems, some chains with one step made wrong (a slip, a wrong operation or a wrong number);
    with --incorrect, one-to-many rows for ``rewardlab eval --format rewardmath``."""
    from rewardlab.atomic import write_jsonl
    from rewardlab.data.arithmetic import make_chains, one_to_many
    from rewardlab.data.chains import first_wrong_step, write_chains
    from rewardlab.destinations import check_jsonl_destination

    check_jsonl_destination(output)
    if incorrect is not None:
        rows = one_to_many(count, incorrect, seed, level)
        write_jsonl(output, rows)
        out.print(
            f"wrote {len(rows)} problems, {incorrect} wrong chains each, to {output}", markup=False, highlight=False
        )
        return
    chains = make_chains(count, wrong_fraction, seed, level)
    write_chains(chains, output)
    wrong = sum(first_wrong_step(c.labels or ()) is not None for c in chains)
    out.print(f"wrote {len(chains)} chains to {output}: {wrong} with a wrong step", markup=False, highlight=False)


@data_app.command("polar-pairs")
@user_errors
def data_polar_pairs(
    policies: Annotated[list[Path], typer.Argument(help="One JSONL file per policy: prompt, reply (prompts repeat)")],
    output: Annotated[Path, typer.Option(help="JSONL pairs to train a policy discriminator on (rewardlab train)")],
    seed: Annotated[int, typer.Option(help="Seed of the reference, chosen and rejected draws")] = 0,
) -> None:
    """POLAR pre-training pairs: the prompt with a reference reply of one policy, chosen another reply of
    that policy, rejected a reply of another (the policy is the file's name)."""
    from rewardlab.atomic import write_jsonl
    from rewardlab.data.polar import policy_pairs, read_policy_replies
    from rewardlab.destinations import check_jsonl_destination

    check_jsonl_destination(output)
    names = [path.stem for path in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"two policy files share a name ({', '.join(names)}): the file name names the policy")
    pairs = policy_pairs({path.stem: read_policy_replies(path) for path in policies}, seed)
    rows = [
        {
            "prompt": p.prompt if isinstance(p.prompt, str) else list(p.prompt),
            "chosen": p.chosen,
            "rejected": p.rejected,
            "subset": p.subset,
        }
        for p in pairs
    ]
    write_jsonl(output, rows)
    out.print(f"wrote {len(rows)} pairs from {len(policies)} policies to {output}", markup=False, highlight=False)
