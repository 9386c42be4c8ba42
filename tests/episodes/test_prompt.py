from transformers import AutoTokenizer

from l2t_core.answers import answers_match, extract_answer
from l2t_core.episodes import ANSWER_INSTRUCTION, EPISODE_SYSTEM_PROMPT, PROMPT_FORMATS, parse_episodes, prompt_format
from l2t_core.episodes.prompt import EPISODE_EXAMPLES, RESTATED_EXAMPLES, SHORT_EPISODE_PROMPT, STEPWISE_EXAMPLES
from l2t_core.eval.tasks.arithmetic import arithmetic_problems


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


def test_the_stepwise_examples_are_a_restatement_computations_and_a_check() -> None:
    """Each worked answer parses back as ≥ 3 tagged episodes (first a restatement, last a check) and the
    answer the trainer's matcher reads; the question's reply is prefilled with the first tag."""
    fmt = prompt_format("stepwise")
    assert "stepwise" in PROMPT_FORMATS and fmt.examples == STEPWISE_EXAMPLES and fmt.prefill == "<episode_1>"
    messages = fmt.messages("What is 2 + 2?")
    assert [m["content"] for m in messages[2:5:2]] == [answer for _, answer in STEPWISE_EXAMPLES]
    for _, answer in STEPWISE_EXAMPLES:
        parsed = parse_episodes(answer)
        assert parsed.tagged and len(parsed.episodes) >= 3
        assert parsed.episodes[-1].text.startswith("<episode_") and "Check:" in parsed.episodes[-1].text
        assert "=" not in parsed.episodes[0].text  # the restatement computes nothing
        last_computation = parsed.episodes[-2].text.removesuffix(f"</episode_{len(parsed.episodes) - 1}>")
        boxed = extract_answer(answer)  # what the trainer's matcher reads: the last computation's result
        assert boxed is not None and answers_match(boxed, last_computation.rsplit("=", 1)[1])
        assert extract_answer(parsed.answer_text) == boxed


def test_the_restated_format_renders_a_restatement_one_computation_and_a_restated_result(tiny_model_dir) -> None:
    """The rendered prompt shows each worked answer whole (three tagged episodes, then the answer line the
    trainer's matcher reads) before the question, whose reply is prefilled with the first tag; only the
    middle episode computes, and the last one restates its result. No example is a question of add2."""
    fmt = prompt_format("restated")
    rendered = fmt.render(AutoTokenizer.from_pretrained(tiny_model_dir), "What is 2 + 2?")
    assert rendered.prefill == "<episode_1>" and rendered.format == "restated"
    positions = [rendered.text.index(answer) for _, answer in RESTATED_EXAMPLES]
    assert positions == sorted(positions) and positions[-1] < rendered.text.rindex("What is 2 + 2?")
    for _, answer in RESTATED_EXAMPLES:
        parsed = parse_episodes(answer)
        assert parsed.tagged and [e.text[:11] for e in parsed.episodes] == [f"<episode_{k}>" for k in (1, 2, 3)]
        restatement, computation, closing = (e.text.split(">", 1)[1].split("<", 1)[0] for e in parsed.episodes)
        boxed = extract_answer(answer)
        assert boxed is not None and parsed.answer_text.strip() == f"The final answer is \\boxed{{{boxed}}}."
        assert "=" not in restatement and "=" not in closing and computation.endswith(f"= {boxed}")
        assert closing.endswith(f" {boxed}.") and extract_answer(parsed.answer_text) == boxed
    add2 = {p.question for p in arithmetic_problems(3000, levels=("add2",))}
    assert not add2 & {question for question, _ in RESTATED_EXAMPLES}
