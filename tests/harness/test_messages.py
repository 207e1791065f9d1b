"""Role-tagged prompt templates: parsing, rendering, the flattening rule for text-to-text models and the refusals."""

import re

import pytest

from harness.errors import ConfigError
from harness.messages import ChatTemplate, Conversation, Message, as_messages, as_text, load_chat_template, prompt_key

TEXT = """[system]
Rewrite the caption.
[user]
Caption: a dog
[assistant]
a small dog
[user]
Caption: $caption
"""


def test_sections_become_messages_and_fields_fill_after_the_split():
    conversation = ChatTemplate("t", TEXT, ("caption",)).render(caption="[user] a cat")
    assert conversation.as_dicts() == [
        {"role": "system", "content": "Rewrite the caption."},
        {"role": "user", "content": "Caption: a dog"},
        {"role": "assistant", "content": "a small dog"},
        {"role": "user", "content": "Caption: [user] a cat"},  # a value is text, never a new section
    ]


def test_the_flattening_rule_puts_an_example_answer_under_its_prompt():
    conversation = ChatTemplate("t", TEXT, ("caption",)).render(caption="a cat")
    assert conversation.flattened() == "Rewrite the caption.\n\nCaption: a dog\na small dog\n\nCaption: a cat"
    assert as_text(conversation) == conversation.flattened() and as_text("plain") == "plain"


def test_a_plain_string_is_one_user_message_and_keys_as_itself():
    assert as_messages("hello") == [{"role": "user", "content": "hello"}]
    assert prompt_key("hello") == "hello"
    conversation = Conversation((Message("user", "hi"),))
    assert prompt_key(conversation) == [{"role": "user", "content": "hi"}]


def test_a_file_without_tags_is_one_user_message(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("Describe $caption\n")
    template = load_chat_template(path, "simulators.plugir", ("caption",))
    assert template.render(caption="x").as_dicts() == [{"role": "user", "content": "Describe x"}]
    assert template.identity() == {"name": str(path), "text": "Describe $caption\n"}


@pytest.mark.parametrize(("text", "problem"), [
    ("preamble\n[user]\nhi", "text before the first"),
    ("[system]\n\n[user]\nhi", "an empty [system] section"),
    ("[user]\nhi\n[assistant]\nanswer", "the last section is [assistant]"),
    ("[user]\n$unknown", "unknown field"),
])
def test_malformed_templates_are_refused(text, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)):
        ChatTemplate("t", text, ("caption",))


def test_every_packaged_plugir_template_loads():
    from simulators.plugir.questioner import DEFAULT_TEMPLATES, TEMPLATE_FIELDS

    for step, fields in TEMPLATE_FIELDS.items():
        conversation = load_chat_template(DEFAULT_TEMPLATES[step], "simulators.plugir", fields).render(
            **{field: f"<{field}>" for field in fields})
        assert conversation.messages[-1].role == "user"
        assert all(f"<{field}>" in conversation.flattened() for field in fields)
