from l2t_core.episodes import ANSWER_INSTRUCTION, EPISODE_SYSTEM_PROMPT, build_messages, render_prompt


def test_messages_carry_the_episode_instruction_and_answer_format():
    messages = build_messages("What is 2 + 3?")
    assert messages[0] == {"role": "system", "content": EPISODE_SYSTEM_PROMPT}
    assert messages[1]["content"].endswith(ANSWER_INSTRUCTION)
    assert "<episode_1>" in EPISODE_SYSTEM_PROMPT


def test_render_uses_the_chat_template_and_prefill(loaded_model):
    text = render_prompt(loaded_model.tokenizer, build_messages("What is 2 + 3?"), prefill="<episode_1>")
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>assistant\n<episode_1>")


def test_prompt_format_puts_worked_examples_before_the_question() -> None:
    from l2t_core.episodes.prompt import EPISODE_EXAMPLES, SHORT_EPISODE_PROMPT, PromptFormat

    messages = PromptFormat(SHORT_EPISODE_PROMPT, "<episode_1>", EPISODE_EXAMPLES).messages("What is 2 + 2?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == SHORT_EPISODE_PROMPT
    assert messages[-1]["content"].startswith("What is 2 + 2?")
    assert all("<episode_1>" in m["content"] for m in messages[2:5:2])
    assert [m["role"] for m in PromptFormat(None).messages("Q?")] == ["user"]
