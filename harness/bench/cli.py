"""The ``harness bench`` command group: every bench subcommand, imported only when it is used.

    harness bench ranking | stages | ray          # this package (no plug-in imported)
    harness bench encoder | live | plugir | dar | adafuse | chatir  # each family's own bench, in its package
"""

from __future__ import annotations

import click

from harness.command_line import LazyGroup


class StagesByDefault(LazyGroup):
    """``harness bench --retriever dar ...`` (options and no subcommand) means ``harness bench stages ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            args = ["stages", *args]
        return super().parse_args(ctx, args)


@click.group(
    "bench",
    cls=StagesByDefault,
    lazy_subcommands={
        "stages": "harness.bench.stages:stages",
        "encoder": "retrievers.dual_encoders.bench:encoder",
        "ranking": "harness.bench.ranking:ranking",
        "live": "simulators.hf.bench:live",
        "plugir": "simulators.plugir.bench:plugir",
        "dar": "retrievers.dar.bench:dar",
        "adafuse": "retrievers.adafuse.bench:adafuse",
        "chatir": "retrievers.dual_encoders.bench:chatir",
        "ray": "harness.bench.executors:ray",
    },
)
def bench() -> None:
    """Measure throughput on this machine. With options and no subcommand (`harness bench --retriever dar
    --questioner flan --answerer blip2`): every stage of the configured evaluation and its projected wall time
    (`stages`). Single stages: `ranking`, `encoder`, `live`, `plugir` (PlugIR's questioner), `dar` (image generation),
    `adafuse` and `chatir` (training), `ray` (executors)."""
