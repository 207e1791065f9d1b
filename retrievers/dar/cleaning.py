"""The post-processor for DAR's LLM outputs, the reformulated caption S_t (R1) and the image prompts (R2): the
counterpart of the bots' ``simulators.common.cleaning`` (switch it off with ``clean_reformulations=false``).

A small instruct model asked to rewrite a dialogue often copies it instead ("Caption: a man on a horse\\nQ: is it
sunny? A: yes"): without cleaning, those lines go straight into the text query and the diffusion prompt. The rules,
in order (``CLEANING_VERSION`` names this list; it is part of DAR's identity, so runs and caches made under other
rules are never mixed with these):

Captions (S_t)
  1. drop every line that copies the dialogue: a line opening with a question label ("Q:", "Question:"), or whose
     text, labels, case and punctuation aside (``harness.dialogue_quality.normalise_question``), is a turn of the dialogue, a turn's question or its answer, or a "Q: ... A: ..."
     line of the prompt (copied-dialogue-line);
  2. drop a leading label from the other lines: "Caption:", "Description:", "Summary:", "Answer:", "A:", "Output:",
     "Reformulated caption:", "New caption:" ... (caption-label);
  3. cut a line at a question or answer label inside it, the start of a dialogue written after the caption
     (leaked-dialogue);
  4. join the lines left with spaces and collapse whitespace.
Image prompts
  list markers ("1.", "-", "*") and the same labels are dropped from each line, lines copying the dialogue are
  dropped (the same rules), and the first K non-empty lines are the prompts (a shortfall is filled with S_t, as
  before, and named: filled-with-caption).

An S_t with no word left, or an R2 answer with no prompt line left, is invalid: redrawn, failed or kept as DAR's
``on_invalid`` says (``harness.turn_validity``).

    >>> clean_caption("Caption: a man on a horse\\nQ: is it sunny? A: yes", ("a man", "is it sunny? yes"))
    Generated('a man on a horse', raw='Caption: a man on a horse\\nQ: is it sunny? A: yes', rules=('caption-label', 'copied-dialogue-line'))
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.dialogue_quality import normalise_question
from harness.protocols import Generated
from harness.turns import format_dialogue, split_turn

CLEANING_VERSION = 1
_LABEL = re.compile(
    r"^\s*(?:reformulated caption|new caption|image prompt|prompt \d+|prompt|caption|description|summary|answer|"
    r"output|a)\s*:\s*", re.IGNORECASE)
_QUESTION_LINE = re.compile(r"^\s*(?:q|question)\s*:", re.IGNORECASE)
_INLINE_DIALOGUE = re.compile(r"\s(?:q|question|a|answer)\s*:", re.IGNORECASE)
LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\(?\d+[.):])\s*")  # "1.", "(2)", "-", "*" before a listed prompt
_WORD = re.compile(r"\w")


def clean_caption(text: str, prefix: Sequence[str]) -> Generated:
    """S_t after the caption rules; ``prefix`` is the dialogue it was written from (caption first)."""
    lines, rules = _clean_lines(text, prefix, strip_markers=False)
    inline = []
    for line in lines:
        leaked = _INLINE_DIALOGUE.search(" " + line)
        inline.append(line if leaked is None else (" " + line)[: leaked.start()].strip())
        if leaked is not None and "leaked-dialogue" not in rules:
            rules.append("leaked-dialogue")
    return Generated(" ".join(" ".join(line for line in inline if line).split()), text, tuple(rules))


def clean_image_prompts(text: str, count: int, caption: str, prefix: Sequence[str]) -> Generated:
    """R2's answer as ``count`` prompts, one per line of the returned text (short of lines: ``caption`` fills in)."""
    lines, rules = _clean_lines(text, prefix, strip_markers=True)
    prompts = [" ".join(line.split()) for line in lines if _WORD.search(line)][:count]
    if prompts and len(prompts) < count:
        rules.append("filled-with-caption")
    return Generated("\n".join(prompts + [caption] * (count - len(prompts)) if prompts else []), text, tuple(rules))


def caption_problem(caption: Generated) -> str | None:
    return None if _WORD.search(caption.text) else "empty"


def _clean_lines(text: str, prefix: Sequence[str], strip_markers: bool) -> tuple[list[str], list[str]]:
    copied = _dialogue_lines(prefix)
    kept: list[str] = []
    rules: list[str] = []
    for line in text.splitlines():
        if strip_markers:
            line = LIST_MARKER.sub("", line)
        unlabelled = _LABEL.sub("", line)
        normalised = normalise_question(unlabelled)
        if _QUESTION_LINE.match(line) or (normalised and normalised in copied):
            _note(rules, "copied-dialogue-line")
            continue
        if unlabelled != line:
            _note(rules, "caption-label")
        kept.append(unlabelled.strip())
    return kept, rules


def _dialogue_lines(prefix: Sequence[str]) -> set[str]:
    """Every line of the dialogue a model might copy: each turn, its question, its answer, the prompt's Q/A lines."""
    lines = set()
    for turn in prefix[1:]:
        question, answer = split_turn(turn)
        lines |= {turn, question, answer}
    if len(prefix) > 1:
        lines |= set(format_dialogue(prefix).splitlines())
    return {normalise_question(line) for line in lines} - {""}


def _note(rules: list[str], rule: str) -> None:
    if rule not in rules:
        rules.append(rule)
