"""The episode prompt: the paper's "adaptive" instruction (App. G.4.2) plus a `\\boxed{}` answer instruction.

The prompt is always rendered through the tokenizer's own chat template so that scoring sees exactly
the tokens the generator saw. `prefill` appends text to the assistant turn (e.g. "<episode_1>"), which
raises the tag rate of small models (DESIGN §1).
"""

from __future__ import annotations

from typing import Any

EPISODE_SYSTEM_PROMPT = (
    "You are a helpful assistant. After the user asks a question, you first think carefully and then "
    "give the answer. The thinking process should be enclosed within <think> </think> tags. "
    "Break down your reasoning into logically coherent segments. Each segment should be enclosed in "
    "<episode_k> ... </episode_k> tags, such as:\n"
    "<episode_1>...</episode_1>\n<episode_2>...</episode_2>\n...\n<episode_K>...</episode_K>\n"
    "Ensure each <episode_k> contains only a single complete logical move, such as a definition, a "
    "formula derivation, a transformation, or a case split. Avoid grouping multiple logical steps into one."
)
ANSWER_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

Message = dict[str, str]


def build_messages(question: str, system_prompt: str | None = EPISODE_SYSTEM_PROMPT) -> list[Message]:
    """Chat messages for one question: the episode system prompt and the question with the answer instruction."""
    messages: list[Message] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": f"{question.strip()} {ANSWER_INSTRUCTION}"})
    return messages


def render_prompt(tokenizer: Any, messages: list[Message], prefill: str = "") -> str:
    """The prompt text up to the start of the assistant's reply (plus any prefill)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:  # base models without a template: a plain transcript
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    return str(text) + prefill
