"""The post-processor for generated questions and answers (switch it off with the bots' ``clean=false``).

Generated text often echoes its prompt frame; the published FLAN_ALPACA_XXL_BLIP2 file shows the result ("What
color is the poster on the wall? Answer: yellow Answer: yellow yellow"). The rules, in order:

Questions
  1. drop a leading "Question:" / "Q:" label;
  2. cut at the first "Answer:" / "A:" label (a leaked answer);
  3. keep the text up to and including the first "?" (one question per round), or add a "?" if there is none;
  4. collapse whitespace.
Answers
  1. drop leading "Answer:" / "A:" / "Short answer:" labels (repeatedly);
  2. drop a leading copy of the question;
  3. cut at a second "Answer:" / "Question:" label;
  4. collapse whitespace and strip a trailing "?".

    >>> clean_question("Question: What color is the car? Answer: red")
    'What color is the car?'
    >>> clean_answer("Answer: red Answer: red", "What color is the car?")
    'red'
"""

from __future__ import annotations

import re

_QUESTION_LABEL = re.compile(r"^\s*(question|q)\s*:\s*", re.IGNORECASE)
_ANSWER_LABEL = re.compile(r"^\s*(short answer|answer|a)\s*:\s*", re.IGNORECASE)
_LEAKED_ANSWER = re.compile(r"\s(answer|a)\s*:", re.IGNORECASE)
_LATER_LABEL = re.compile(r"\s(answer|question|short answer)\s*:", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def clean_question(text: str) -> str:
    text = _QUESTION_LABEL.sub("", text)
    leaked = _LEAKED_ANSWER.search(" " + text)
    if leaked:
        text = (" " + text)[: leaked.start()]
    text = _SPACES.sub(" ", text).strip()
    mark = text.find("?")
    return text[: mark + 1] if mark >= 0 else (text + "?" if text else text)


def clean_answer(text: str, question: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _ANSWER_LABEL.sub("", text)
    stripped_question = question.strip()
    if stripped_question and text.strip().lower().startswith(stripped_question.lower()):
        text = text.strip()[len(stripped_question):]
        text = _ANSWER_LABEL.sub("", text)
    later = _LATER_LABEL.search(" " + text)
    if later:
        text = (" " + text)[: later.start()]
    return _SPACES.sub(" ", text).strip().rstrip("?").strip()
