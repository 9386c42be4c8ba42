"""The episode prompt: the paper's "adaptive" instruction (App. G.4.2) plus a `\\boxed{}` answer instruction.

The prompt is always rendered through the tokenizer's own chat template so that scoring sees exactly
the tokens the generator saw. `prefill` appends text to the assistant turn (e.g. "<episode_1>"), which
raises the tag rate of small models (DESIGN §1).
"""

from __future__ import annotations

from dataclasses import dataclass
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
# A short instruction for small models: SmolLM2-135M copies the long prompt's tag template into its
# answer instead of reasoning (EVAL.md measures both).
SHORT_EPISODE_PROMPT = (
    "Solve the problem step by step. Write each step inside episode tags: <episode_1>first step</episode_1> "
    "<episode_2>second step</episode_2> and so on. Then give the final answer in \\boxed{}."
)
# Worked examples that show a small model the episode format (one one-step, one two-step problem).
EPISODE_EXAMPLES = (
    ("What is 3 + 4?", "<episode_1>3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}."),
    (
        "Ann has 5 pens. She buys 6 more and then gives away 2. How many pens does Ann have now?",
        "<episode_1>She has 5 + 6 = 11 pens after buying.</episode_1>\n"
        "<episode_2>After giving away 2 she has 11 - 2 = 9 pens.</episode_2>\nThe final answer is \\boxed{9}.",
    ),
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


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes a prompt: the system prompt (None: no system turn) and the assistant prefill.

    The prefill is generated *after* (it is part of the prompt the engine sees) but parsed and scored as
    the start of the completion, so an opening `<episode_1>` counts as the first episode's tag.
    """

    system_prompt: str | None = EPISODE_SYSTEM_PROMPT
    prefill: str = ""
    examples: tuple[tuple[str, str], ...] = ()  # worked (question, episode-tagged answer) turns before the question

    def messages(self, question: str) -> list[Message]:
        messages = build_messages(question, self.system_prompt)
        shots: list[Message] = []
        for example_question, example_answer in self.examples:
            shots += build_messages(example_question, None)
            shots.append({"role": "assistant", "content": example_answer})
        return messages[:-1] + shots + messages[-1:]
