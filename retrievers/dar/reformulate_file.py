"""``harness data reformulate``: DAR's R1 over any ChatIR-format file, one caption S_t per (dialogue, round), written
as a reformulated-dialogue file (what ``--dar-queries``, ``dar generate --dar-queries`` and ``train adafuse`` read).

    harness data reformulate --benchmark data/visdial_train.json --llm hf-seq2seq --llm-model DIR \\
            --out data/visdial_train_S.json
    write_reformulated({"llm": "hf-seq2seq", "llm_args": {"model": DIR}}, dialogues, out)

The settings are ``retrievers.dar.retriever.build_dar``'s arguments (``--llm``, ``--llm-model``, ``--retriever-arg
caption_prompt=FILE``, ``clean_reformulations``, ``on_invalid`` ...), so the job builds the very reformulator a DAR run
with them builds: same back-end, template, post-processing and response cache, and a later DAR run over the same
dialogues with the same settings, on the same kind of device (a local model's dtype, hence its cache keys, follows
the device under dtype=auto), asks the LLM for no caption (the paper variant's R2 image prompts are asked for unless
``dar generate`` already drew their images). Dialogues go in batches with a progress bar; each batch's captions are cached as they
are made, so a killed job run again asks only for the rest. Record i of the output is dialogue i of the input, with
S_0..S_t of its rounds (``--rounds`` caps t). A caption that stays invalid after its redraws (an empty S_t) stops
the job before anything is written, naming the dialogue and round; with ``on_invalid=keep`` the kept ones are listed
in the sidecar ``<out>.manifest.json``, beside the reformulator's identity and the input's sha256.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from harness.command_line import parse_argument
from harness.config import default_cache_dir
from harness.devices import resolve_device
from harness.dialogue_files import write_chatir_dialogues
from harness.errors import ConfigError, HarnessError
from harness.hashing import sha256_file
from harness.progress import progress_bar
from harness.protocols import Generated, RunContext
from harness.sidecar import write_sidecar
from harness.turn_validity import InvalidTurn
from harness.types import Dialogue, DialogueState, batched
from retrievers.dar.retriever import build_dar


def write_reformulated(dar_args: Mapping[str, Any], dialogues: Sequence[Dialogue], out: Path,
                       rounds: int | None = None, cache_dir: Path | None = None, device: str = "auto",
                       batch_size: int = 64, progress: bool = True, source: Path | None = None) -> int:
    """Write S_0..S_t of every dialogue to ``out``; returns the captions written."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    # The base encoder plays no part in R1: a preset with public weights lets the DAR settings build without them.
    arguments = {"base": "cocoft", **dict(dar_args), "queries": None}
    retriever = build_dar(**arguments)
    if retriever.reformulator is None:
        raise ConfigError("reformulation needs an LLM (llm=...)")
    context = RunContext(device=resolve_device(device), cache_dir=Path(cache_dir or default_cache_dir()),
                         progress=progress)
    retriever.reformulator.load(context)
    written: list[Dialogue] = []
    invalid: list[tuple[str, int, str]] = []
    kept_invalid: list[dict[str, Any]] = []  # on_invalid=keep: captions kept though invalid, with their rules
    with progress_bar(len(dialogues), "reformulating", "dialogue", progress) as bar:
        for chunk in batched(list(dialogues), batch_size):
            states = [DialogueState.at_round(dialogue, _last_round(dialogue, rounds), target_index=0)
                      for dialogue in chunk]
            for dialogue, captions in zip(chunk, retriever._captions_up_to_round(states)):
                invalid += [(dialogue.dialogue_id, round_, caption.reason) for round_, caption in enumerate(captions)
                            if isinstance(caption, InvalidTurn)]
                kept_invalid += [{"dialogue": dialogue.dialogue_id, "round": round_, "rules": list(caption.rules)}
                                 for round_, caption in enumerate(captions)
                                 if isinstance(caption, Generated) and any(rule.startswith("invalid:")
                                                                           for rule in caption.rules)]
                written.append(Dialogue(dialogue.dialogue_id, dialogue.target, tuple(map(str, captions))))
            bar.update(len(chunk))
    if invalid:
        dialogue_id, round_, reason = invalid[0]
        raise HarnessError(f"{len(invalid)} captions stayed invalid after their redraws (first: dialogue {dialogue_id}, "
                           f"round {round_}: {reason}); nothing was written. The valid ones are cached: allow more "
                           "redraws (--retriever-arg max_resamples=5), or use another LLM or prompt (on_invalid=keep "
                           "would keep every first draw, the repaired ones too)")
    write_chatir_dialogues(out, written)
    write_sidecar(out, {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "reformulator": dict(retriever.reformulator.identity()),
        "input": {"file": str(source), "sha256": sha256_file(source)} if source is not None else None,
        "dialogues": len(written),
        "rounds": rounds,
        "kept_invalid": kept_invalid,
        "output_sha256": sha256_file(out),
    })
    return sum(len(dialogue.turns) for dialogue in written)


def _last_round(dialogue: Dialogue, rounds: int | None) -> int:
    last = len(dialogue.turns) - 1
    return last if rounds is None else min(rounds, last)


@click.command("reformulate")
@click.option("--benchmark", required=True, help="Known benchmark name (with --data-dir) or ChatIR-format file.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Folder of the known benchmarks.")
@click.option("--llm", help="Text generator (hf-seq2seq, hf-chat, openai; default DAR's, hf-seq2seq).")
@click.option("--llm-model", help="The LLM's model: hub id, local directory or API model name (default: DAR's).")
@click.option("--retriever-arg", multiple=True, metavar="KEY=VALUE",
              help="Any other build_dar argument, as `harness run --retriever dar` takes it (repeatable).")
@click.option("--rounds", type=int, help="Rounds after the caption (default: every round of each dialogue).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N dialogues.")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Reformulated-dialogue file to write.")
@click.option("--batch-size", default=64, show_default=True, help="Dialogues per LLM batch.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), help="Shared cache (default as `harness run`).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def reformulate(benchmark: str, data_dir: Path | None, llm: str | None, llm_model: str | None, retriever_arg: tuple[str, ...],
                rounds: int | None, limit: int | None, out: Path, batch_size: int, device: str,
                cache_dir: Path | None, quiet: bool) -> None:
    """Rewrite every dialogue prefix of BENCHMARK into DAR's caption S_t (R1) and write the reformulated file."""
    from harness.library_output import silence_library_progress
    from harness.runner import load_dialogues

    if quiet:
        silence_library_progress()
    if rounds is not None and rounds < 0:
        raise click.BadParameter("--rounds must be 0 or more")
    dar_args: dict[str, Any] = dict(parse_argument(text) for text in retriever_arg)
    if llm is not None:
        dar_args["llm"] = llm
    if llm_model is not None:
        dar_args["llm_args"] = {**dict(dar_args.get("llm_args") or {}), "model": llm_model}
    try:
        dialogues = load_dialogues(benchmark, data_dir)
        source = Path(benchmark) if Path(benchmark).is_file() else None
        count = write_reformulated(dar_args, dialogues[:limit] if limit else dialogues, out, rounds, cache_dir,
                                   device, batch_size, progress=not quiet, source=source)
    except HarnessError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {count} captions of {len(dialogues[:limit] if limit else dialogues)} dialogues to {out}")
