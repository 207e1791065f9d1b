"""The post-processor for generated questions and answers (switch it off with the bots' ``clean=false``).

Generated text often echoes its prompt frame; the published FLAN_ALPACA_XXL_BLIP2 file shows the result ("What
color is the poster on the wall? Answer: yellow Answer: yellow yellow"). The rules, in order:

Questions
  1. drop a leading "Question:" / "Q:" label;
  2. cut at the first "Answer:" / "A:" label (a leaked answer);
  3. keep the text up to and including the first "?" (one question per round), or add a "?" if there is none,
     replacing trailing sentence punctuation (". ! , ; :") so that "on a tripod." becomes "on a tripod?";
  4. collapse whitespace.
Answers
  1. drop leading "Answer:" / "A:" / "Short answer:" labels (repeatedly);
  2. drop a leading copy of the question;
  3. cut at a second "Answer:" / "Question:" label;
  4. collapse whitespace and strip a trailing "?".

    >>> clean_question("Question: What color is the car? Answer: red")
    Generated('What color is the car?', raw='Question: What color is the car? Answer: red', rules=('question-label', 'leaked-answer'))
    >>> clean_answer("Answer: red Answer: red", "What color is the car?")
    Generated('red', raw='Answer: red Answer: red', rules=('answer-label',))

Each returns a ``Generated``: the cleaned text (the string itself), the raw output, and the names of the rules that
changed it
(question-label, leaked-answer, first-question, added-question-mark; answer-label, copied-question, later-label),
which a run's trace keeps.

What is still invalid after cleaning (``question_problem``, ``answer_problem``): a question that is empty (nothing
but punctuation), a raw output that holds no "?" at all (a statement, a refusal such as "I'm sorry ... as a
chatbot", an answer the model wrote in the question's place), an empty answer. The bots redraw, fail or keep such
turns (``harness.turn_validity``); the rules above still run on them, so a kept statement reads as a question.
"""

from __future__ import annotations

import re

from harness.protocols import Generated

_QUESTION_LABEL = re.compile(r"^\s*(question|q)\s*:\s*", re.IGNORECASE)
_ANSWER_LABEL = re.compile(r"^\s*(short answer|answer|a)\s*:\s*", re.IGNORECASE)
_LEAKED_ANSWER = re.compile(r"\s(answer|a)\s*:", re.IGNORECASE)
_LATER_LABEL = re.compile(r"\s(answer|question|short answer)\s*:", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w")


def clean_question(text: str) -> Generated:
    """The question rules in order; ``rules`` names those that changed the text."""
    raw, rules = text, []
    unlabelled = _QUESTION_LABEL.sub("", text)
    if unlabelled != text:
        rules.append("question-label")
    text = unlabelled
    leaked = _LEAKED_ANSWER.search(" " + text)
    if leaked:
        text = (" " + text)[: leaked.start()]
        rules.append("leaked-answer")
    text = _SPACES.sub(" ", text).strip()
    mark = text.find("?")
    if mark >= 0 and mark + 1 < len(text):
        text = text[: mark + 1]
        rules.append("first-question")
    elif mark < 0 and text:
        text = text.rstrip(".!,;: ") + "?"
        rules.append("added-question-mark")
    return Generated(text, raw, tuple(rules))


def clean_answer(text: str, question: str) -> Generated:
    """The answer rules in order; ``rules`` names those that changed the text."""
    raw, rules = text, []
    previous = None
    while previous != text:
        previous = text
        text = _ANSWER_LABEL.sub("", text)
    if text != raw:
        rules.append("answer-label")
    stripped_question = question.strip()
    if stripped_question and text.strip().lower().startswith(stripped_question.lower()):
        text = _ANSWER_LABEL.sub("", text.strip()[len(stripped_question):])
        rules.append("copied-question")
    later = _LATER_LABEL.search(" " + text)
    if later:
        text = (" " + text)[: later.start()]
        rules.append("later-label")
    cleaned = _SPACES.sub(" ", text).strip().rstrip("?").strip()
    return Generated(cleaned, raw, tuple(rules))


def question_problem(question: Generated) -> str | None:
    """Why a cleaned question is not one (None when it is): "empty" or "no question mark" (in the raw output)."""
    if not _WORD.search(question.text):
        return "empty"
    if "?" not in question.raw:
        return "no question mark"
    return None


def answer_problem(answer: Generated) -> str | None:
    return None if _WORD.search(answer.text) else "empty"
