"""Options and arguments several commands take, with their help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ColumnsOption = Annotated[
    str | None,
    typer.Option(help="Where your data keeps each field, as name=field pairs, e.g. prompt=question,chosen=response_j"),
]
DATA_HELP = (
    "Preference data: a file, a datasets folder, a cached Hub dataset org/name[:split], or a packaged"
    " dataset: hh-harmless, ultrafeedback, tulu1, finegrained"
)
DataArgument = Annotated[str, typer.Argument(help=DATA_HELP + "; 'default' for the embedded data (hh-harmless)")]
SplitOption = Annotated[str, typer.Option(help="all, or train/validation/test of the default seeded split")]
PrecisionOption = Annotated[str, typer.Option(help="auto (bf16 where the CPU/GPU has it), bf16 or fp32")]
OverwriteRunOption = Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in --output")]
PrintConfigOption = Annotated[
    bool, typer.Option("--print-config", help="Print the resolved config, each key with its doc, and exit")
]
SkipOption = Annotated[
    bool, typer.Option("--skip-bad-rows", help="Skip invalid rows (counted and reported) instead of failing")
]

# the commands that sample replies from a policy (cli/sample.py)
PolicyOption = Annotated[str, typer.Option(help="smollm2 or a local causal LM folder")]
GoldOption = Annotated[Path, typer.Option(help="Gold reward model folder: the reward really wanted")]
PromptDataOption = Annotated[str, typer.Option(help="Preference data whose distinct prompts are used")]
PromptCountOption = Annotated[int, typer.Option(help="How many distinct prompts")]
TemperatureOption = Annotated[float, typer.Option(help="Sampling temperature")]
MaxNewTokensOption = Annotated[int, typer.Option(help="Tokens per reply at most")]
ChunkOption = Annotated[int, typer.Option(help="Replies per generate call (memory)")]
