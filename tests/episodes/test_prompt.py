from l2t_core.episodes import ANSWER_INSTRUCTION, EPISODE_SYSTEM_PROMPT, PROMPT_FORMATS, prompt_format
from l2t_core.episodes.prompt import EPISODE_EXAMPLES, SHORT_EPISODE_PROMPT


def test_the_episode_format_carries_the_papers_instruction_and_answer_format():
    messages = prompt_format("episode").messages("What is 2 + 3?")
    assert messages[0] == {"role": "system", "content": EPISODE_SYSTEM_PROMPT}
    assert messages[1]["content"].endswith(ANSWER_INSTRUCTION)
    assert "<episode_1>" in EPISODE_SYSTEM_PROMPT


def test_render_uses_the_chat_template_and_keeps_the_prefill_apart(loaded_model):
    rendered = prompt_format("short").render(loaded_model.tokenizer, "What is 2 + 3?")
    assert rendered.text.startswith("<|im_start|>system\n") and rendered.text.endswith("<|im_start|>assistant\n")
    assert rendered.prefill == "<episode_1>" and rendered.engine_input.endswith("<|im_start|>assistant\n<episode_1>")


def test_the_worked_format_puts_its_examples_before_the_question() -> None:
    messages = prompt_format("worked").messages("What is 2 + 2?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == SHORT_EPISODE_PROMPT
    assert messages[-1]["content"].startswith("What is 2 + 2?")
    assert [m["content"] for m in messages[2:5:2]] == [answer for _, answer in EPISODE_EXAMPLES]
    assert [m["role"] for m in prompt_format("plain").messages("Q?")] == ["user"]


def test_cache_identity_ignores_names_and_help() -> None:
    identities = {str(f.identity()) for f in PROMPT_FORMATS.values()}
    assert len(identities) == len(PROMPT_FORMATS)  # every preset asks differently
    assert set(prompt_format("worked").identity()) == {"system_prompt", "prefill", "examples"}
