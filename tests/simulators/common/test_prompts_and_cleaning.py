import pytest

from harness.errors import ConfigError
from harness.turns import format_dialogue, format_turn, split_turn
from harness.types import DialogueState
from simulators.common.cleaning import clean_answer, clean_question
from simulators.common.prompts import load_template, render_for_state


def test_packaged_templates_load_and_render_every_field():
    state = DialogueState("0", "a.png", 0, 1, ("a red bus", "is it moving? no"))
    prompt = render_for_state(load_template("questioner"), state)
    assert "a red bus" in prompt and "Q: is it moving? A: no" in prompt
    assert render_for_state(load_template("answerer"), state, "what color?") == (
        "a red bus. Question: what color? Short answer:"
    )
    assert format_dialogue(("cap",)) == "(no questions asked yet)"


def test_user_template_file_and_unknown_fields(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("Describe $caption then ask about round $round")
    assert load_template(path).render(caption="x", round=2) == "Describe x then ask about round 2"
    path.write_text("Hello $nme")
    with pytest.raises(ConfigError, match="unknown field"):
        load_template(path)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Question: What color is the poster on the wall? Answer: blue blue", "What color is the poster on the wall?"),
        ("what is it? is it big?", "what is it?"),
        ("  q:  is it   sunny  ", "is it sunny?"),
    ],
)
def test_clean_question(raw, clean):
    assert clean_question(raw) == clean


@pytest.mark.parametrize(
    "raw, question, clean",
    [
        ("Answer: yellow Answer: yellow yellow", "What color?", "yellow"),
        ("What color? blue", "What color?", "blue"),
        ("short answer: two dogs?", "How many?", "two dogs"),
        ("no", "Is it raining?", "no"),
    ],
)
def test_clean_answer(raw, question, clean):
    assert clean_answer(raw, question) == clean


def test_turns_round_trip():
    assert split_turn(format_turn("is it red", "yes")) == ("is it red?", "yes")
    assert split_turn("no question mark here") == ("", "no question mark here")
