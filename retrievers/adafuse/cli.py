"""``harness train adafuse``: train an ADaFuSE fusion module (mounted lazily by the harness CLI).

    harness train adafuse --train-dialogues visdial_train_summarised.json --train-images GEN_DIR \\
                          --image-root COCO --base chatir --base-model chatir_weights.ckpt --out checkpoints/adafuse
    harness train adafuse ... --mode end-to-end --device cuda           # the text side of the encoder trains too

The same command again resumes from ``OUT/last/`` (and does nothing more once every epoch is done);
``--checkpoint-every N`` also writes it every N optimizer steps, so a kill mid-epoch loses at most N steps. The best
checkpoint by validation Hits@10 is ``OUT/best/``: run it with ``--retriever adafuse`` and
``fusion_checkpoint=OUT``. Embeddings of the training data are cached under ``--cache-dir`` (the harness cache by
default), so a second run over the same files starts training in seconds.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import HarnessError
from harness.library_output import silence_library_progress


@click.command("adafuse")
@click.option("--train-dialogues", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="ChatIR-format file whose entries are each round's reformulated caption (e.g. summarised VisDial "
                   "train).")
@click.option("--train-images", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Generated images, one per (dialogue, round): round{r}/{index}.jpg or {index}_{round}.jpg.")
@click.option("--image-root", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Folder the dialogues' target paths (img) are relative to.")
@click.option("--base", default="chatir", show_default=True, type=click.Choice(["zs", "cocoft", "chatir", "clip"]),
              help="Base dual-encoder preset.")
@click.option("--base-model", default=None, help="Base weights (checkpoint, directory or hub id); the chatir preset "
                                                 "needs chatir_weights.ckpt here.")
@click.option("--tokenizer", default=None, help="Tokenizer for original-format checkpoints.")
@click.option("--max-text-tokens", default=256, show_default=True, type=click.IntRange(min=1),
              help="Caption truncation (DAR and ADaFuSE use 256).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Output folder: best/, last/, summary.json (an existing run is resumed).")
@click.option("--mode", default="frozen", show_default=True, type=click.Choice(["frozen", "end-to-end"]))
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--lr-fusion", default=5e-5, show_default=True, type=float)
@click.option("--lr-encoder", default=1e-5, show_default=True, type=float, help="Text side (end-to-end mode).")
@click.option("--weight-decay", default=0.05, show_default=True, type=float)
@click.option("--warmup-epochs", default=5.0, show_default=True, type=float)
@click.option("--temperature", default=0.07, show_default=True, type=float,
              help="Initial (or, with --fixed-temperature, fixed) InfoNCE temperature.")
@click.option("--fixed-temperature", is_flag=True, help="Do not learn the temperature.")
@click.option("--validation-fraction", default=0.1, show_default=True, type=float)
@click.option("--select-on-benchmark", "selection_dialogues", type=click.Path(path_type=Path, dir_okay=False,
              exists=True), help="Choose the best epoch on this benchmark (its reformulated dialogues: round-10 "
              "Hits@10 over --select-search-space), as the ADaFuSE authors did; warned, since the benchmark's figures "
              "of that model are then not held-out. Needs --select-images and --select-search-space.")
@click.option("--select-images", "selection_images", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Generated images of the --select-on-benchmark dialogues (either layout of --train-images).")
@click.option("--select-search-space", "selection_space", type=click.Path(path_type=Path, dir_okay=False,
              exists=True), help="The search space --select-on-benchmark ranks (under --image-root).")
@click.option("--rounds", default=None, type=click.IntRange(min=0), help="Use rounds 0..N of each dialogue only.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--checkpoint-every", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also write the resumable OUT/last/ every N optimizer steps inside an epoch (0: at epoch ends "
                   "only). Does not change the weights, so it may differ on resume.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--embed-batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Batch size of the one-off embedding pass.")
@click.option("--cache-dir", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="Embedding cache (default $HARNESS_CACHE or ~/.cache/itir-harness).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def adafuse(
    train_dialogues: Path,
    train_images: Path,
    image_root: Path,
    base: str,
    base_model: str | None,
    tokenizer: str | None,
    max_text_tokens: int,
    out_dir: Path,
    mode: str,
    epochs: int,
    batch_size: int,
    lr_fusion: float,
    lr_encoder: float,
    weight_decay: float,
    warmup_epochs: float,
    temperature: float,
    fixed_temperature: bool,
    validation_fraction: float,
    selection_dialogues: Path | None,
    selection_images: Path | None,
    selection_space: Path | None,
    rounds: int | None,
    seed: int,
    checkpoint_every: int,
    device: str,
    embed_batch_size: int,
    cache_dir: Path | None,
    quiet: bool,
) -> None:
    """Train ADaFuSE fusion over a base encoder: symmetric InfoNCE, best checkpoint on a validation split."""
    from harness.config import default_cache_dir
    from harness.devices import resolve_device
    from harness.registry import REGISTRY
    from retrievers.adafuse.data import embed_training_set, load_training_set
    from retrievers.adafuse.train import TrainSettings, train_adafuse
    from retrievers.dual_encoders.loading import load_encoder
    from retrievers.dual_encoders.retriever import build_dual_encoder

    selection_options = (selection_dialogues, selection_images, selection_space)
    if any(selection_options) and not all(selection_options):
        raise click.UsageError("--select-on-benchmark, --select-images and --select-search-space go together")
    progress = not quiet
    if quiet:
        silence_library_progress()
    try:
        resolved = resolve_device(device)
        settings = TrainSettings(
            mode=mode, lr_fusion=lr_fusion, lr_encoder=lr_encoder, epochs=epochs, batch_size=batch_size,
            weight_decay=weight_decay, warmup_epochs=warmup_epochs, temperature=temperature,
            learn_temperature=not fixed_temperature, seed=seed, validation_fraction=validation_fraction,
            selection="benchmark" if selection_dialogues else "validation", device=resolved,
        )
        examples = load_training_set(train_dialogues, train_images, image_root, rounds)
        retriever = build_dual_encoder(base, model=base_model, tokenizer=tokenizer, max_text_tokens=max_text_tokens)
        cache = cache_dir or default_cache_dir()
        encoder = load_encoder(retriever.settings, resolved, cache, progress)
        click.echo(f"{len(examples.items)} training examples, {len(examples.targets)} targets "
                   f"({examples.layout} image layout); base {base} on {resolved}, {mode} mode")
        data = embed_training_set(examples, encoder, cache, embed_batch_size, progress)
        selection = None
        if selection_dialogues is not None:
            assert selection_images is not None and selection_space is not None
            benchmark, _ = REGISTRY.build("benchmark", "chatir-file", dialogues=selection_dialogues,
                                          search_space=selection_space, image_root=image_root, expected_turns=None)
            last_rounds = load_training_set(selection_dialogues, selection_images, image_root, only_last=True)
            selection = embed_training_set(last_rounds, encoder, cache, embed_batch_size, progress,
                                           search_space=benchmark.search_space.paths)
        summary = train_adafuse(settings, data, encoder, out_dir, progress=progress, checkpoint_every=checkpoint_every,
                                selection=selection)
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    if summary.resumed_from_epoch is not None and summary.resumed_from_epoch > epochs:
        click.echo(f"all {epochs} epochs were already done in {out_dir}: nothing to train")
    elif summary.resumed_from_epoch is not None:
        within = f" and {summary.resumed_at_batch} batches of epoch {summary.resumed_from_epoch}"
        click.echo(f"resumed {out_dir} after epoch {summary.resumed_from_epoch - 1}"
                   + (within if summary.resumed_at_batch else ""))
    click.echo(summary.describe())
