"""``harness convert``: an original BLIP/LAVIS/ChatIR checkpoint as a transformers directory (mounted lazily).

    harness convert model_base_retrieval_coco.pth --out runs/blip-cocoft [--tokenizer DIR] [--image-size 224]

The directory it writes loads with ``--retriever-model DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.errors import HarnessError


@click.command("convert")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the transformers model, tokenizer and conversion.json into.",
)
@click.option(
    "--tokenizer", default=None, help="Tokenizer directory or hub id [default: Salesforce/blip-itm-base-coco]."
)
@click.option(
    "--image-size",
    default=224,
    show_default=True,
    type=click.IntRange(min=1),
    help="Resolution to run at; the position grid is resized to it.",
)
def convert(checkpoint: Path, out_dir: Path, tokenizer: str | None, image_size: int) -> None:
    """Convert an original BLIP / LAVIS / ChatIR checkpoint into a transformers directory."""
    from retrievers.dual_encoders.convert import DEFAULT_TOKENIZER, convert_checkpoint

    try:
        written = convert_checkpoint(checkpoint, out_dir, tokenizer or DEFAULT_TOKENIZER, image_size)
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    record = json.loads((written / "conversion.json").read_text())
    dropped = ", ".join(f"{count} {group}" for group, count in record["dropped"].items()) or "nothing"
    click.echo(
        f"wrote {written} ({record['image_size']} px; dropped {dropped}); use it with --retriever-model {written}"
    )
