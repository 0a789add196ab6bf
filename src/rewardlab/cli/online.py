"""``rewardlab online``: rounds of generate → judge → update, with a report per round."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, out, user_errors
from rewardlab.cli.options import OverwriteRunOption, PrintConfigOption


@app.command("online", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@user_errors
def online_command(
    config: Annotated[Path, typer.Argument(help="YAML config file (with --print-config: every key and its doc)")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides: key.sub=value, e.g. rounds=3 judge.kind=gpm train.loss=dno"),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Run folder: round-N/ per round, report.md, report.json")] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue after the last finished round (an unfinished one from its checkpoint)"),
    ] = False,
    overwrite: OverwriteRunOption = False,
    print_config: PrintConfigOption = False,
) -> None:
    """Align a policy online: each round it samples replies, a judge (rm, gpm, self, judge) ranks them, and a
    policy loss (dpo, or any of `rewardlab policy-losses`) learns from the best-vs-worst pairs."""
    from rewardlab.online.config import load_online_config
    from rewardlab.online.rounds import run_online

    items = ([f"output_dir={output}"] if output is not None else []) + list(overrides or [])
    if not config.is_file():
        raise FileNotFoundError(f"CONFIG {config}: no such file")
    resolved = load_online_config(config, items)
    if print_config:
        from rewardlab.runs.config_docs import render_config

        typer.echo(render_config(resolved), nl=False)
        return
    result = run_online(resolved, overwrite=overwrite, resume=resume)
    for row in result.report["rounds"]:
        parts = [f"round {row['round']}:"]
        if row["mean_reward"] is not None:
            parts.append(f"held-out reward {row['mean_reward']:.4f}")
        if (win := row["win_rate"]) is not None:
            parts.append(f"win rate {win['rate']:.3f} (95 % CI {win['low']:.3f}–{win['high']:.3f}, n={win['n']})")
        if row["kl"] is not None:
            parts.append(f"KL {row['kl']['kl']:.4f}")
        parts.append(f"{row['mean_reply_tokens']:.1f} tokens")
        out.print(" ".join(parts), highlight=False)
    out.print(f"report: {result.output_dir / 'report.md'}")
