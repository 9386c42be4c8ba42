"""Prompt formats: how a question (or a chat) becomes the text the engine continues.

A format is a named preset: a system prompt, worked examples shown as earlier turns, and an
assistant prefill. Every surface (HTTP routes, the OpenAI extension, `l2t generate`, `l2t eval`,
training) picks a format by name from `PROMPT_FORMATS`, so whatever the evaluation measured is what
the server serves. The prompt is always rendered through the tokenizer's own chat template so that
scoring sees exactly the tokens the generator saw (a separate scorer model renders the same turns
through its own template: `RenderedPrompt.rendered_for`). The prefill is part of the prompt the engine sees
but is parsed and scored as the start of the completion, so an opening `<episode_1>` counts as the
first episode's tag (the pipeline applies it, once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from l2t_core.errors import InvalidRequest
from l2t_core.tokens import encode_text

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
# answer instead of reasoning (docs/evaluation.md measures both).
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
# Worked examples whose answers spread over episodes of unequal worth: a restatement of the problem and a
# closing check carry no information about the answer, the computations between them do, so the L2T
# reward has something to tell apart and training something to compress.
STEPWISE_EXAMPLES = (
    (
        "What is 12 + 9 - 5?",
        "<episode_1>We need to add 12 and 9, then subtract 5.</episode_1>\n"
        "<episode_2>12 + 9 = 21</episode_2>\n"
        "<episode_3>21 - 5 = 16</episode_3>\n"
        "<episode_4>Check: 16 + 5 = 21 and 21 - 9 = 12.</episode_4>\n"
        "The final answer is \\boxed{16}.",
    ),
    (
        "Ann has 5 pens. She buys 6 more and then gives away 2. How many pens does Ann have now?",
        "<episode_1>Ann starts with 5 pens, gets 6 more, then gives away 2.</episode_1>\n"
        "<episode_2>5 + 6 = 11</episode_2>\n"
        "<episode_3>11 - 2 = 9</episode_3>\n"
        "<episode_4>Check: 9 + 2 = 11 and 11 - 6 = 5.</episode_4>\n"
        "The final answer is \\boxed{9}.",
    ),
)
# Worked one-computation examples: a restatement of the numbers, the one computation that carries the answer, and
# a closing episode that only restates the result. A 135M model copies this three-episode shape without inventing
# further computations (it does after `STEPWISE_EXAMPLES`' two), so its answers have several episodes of which
# one is informative. Each example has an operand outside add2's range (2-30), so none is a question of the task.
RESTATED_EXAMPLES = (
    (
        "What is 23 + 45?",
        "<episode_1>We add 23 and 45.</episode_1>\n"
        "<episode_2>23 + 45 = 68</episode_2>\n"
        "<episode_3>So 23 plus 45 is 68.</episode_3>\n"
        "The final answer is \\boxed{68}.",
    ),
    (
        "What is 41 + 7?",
        "<episode_1>We add 41 and 7.</episode_1>\n"
        "<episode_2>41 + 7 = 48</episode_2>\n"
        "<episode_3>So 41 plus 7 is 48.</episode_3>\n"
        "The final answer is \\boxed{48}.",
    ),
    (
        "What is 36 + 18?",
        "<episode_1>We add 36 and 18.</episode_1>\n"
        "<episode_2>36 + 18 = 54</episode_2>\n"
        "<episode_3>So 36 plus 18 is 54.</episode_3>\n"
        "The final answer is \\boxed{54}.",
    ),
)
ANSWER_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
FIRST_EPISODE = "<episode_1>"

Message = dict[str, str]


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The prompt text up to the start of the assistant's reply."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    else:  # base models without a template: a plain transcript
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    return str(text)


@dataclass(frozen=True)
class RenderedPrompt:
    """What the engine continues: `text` (chat template applied) then `prefill` (the reply's first words),
    with their token ids, tokenized once here (`l2t_core.tokens`) and used by every later stage.

    Completions returned by the pipeline start with the prefill, so parsing and scoring see it. The text
    and the prefill are tokenized apart (`token_ids`, `prefill_ids`): the scorer's prompt is `token_ids`
    and its completion starts with `prefill_ids`, so the engine's input `engine_ids` is exactly their
    concatenation. `chat` keeps the turns `text` was rendered from, so a scorer model with another chat
    template can render the same conversation its own way (`rendered_for`).
    """

    text: str
    prefill: str = ""
    format: str | None = None  # the format's name; None for raw text (`/v1/completions`)
    chat: tuple[Message, ...] = field(default=(), hash=False)  # empty for raw text
    token_ids: tuple[int, ...] = field(default=(), hash=False)  # `text`'s ids
    prefill_ids: tuple[int, ...] = field(default=(), hash=False)  # `prefill`'s ids

    @classmethod
    def raw(cls, tokenizer: Any, text: str) -> RenderedPrompt:
        """Raw text (`/v1/completions`, `l2t score --prompt`): continued as written, no chat template."""
        return cls(text, token_ids=encode_text(tokenizer, text))

    @classmethod
    def of_ids(cls, tokenizer: Any, ids: Sequence[int]) -> RenderedPrompt:
        """A token-id prompt (`/v1/completions` with a list of ids): the ids as given, the text they decode to."""
        return cls(tokenizer.decode(list(ids)), token_ids=tuple(int(i) for i in ids))

    @property
    def engine_input(self) -> str:
        return self.text + self.prefill

    @property
    def engine_ids(self) -> tuple[int, ...]:
        """The token ids the engine continues: the prompt's, then the prefill's."""
        if self.text and not self.token_ids:
            raise ValueError(
                "this prompt was built without its token ids (use PromptFormat.render or RenderedPrompt.raw)"
            )
        return self.token_ids + self.prefill_ids

    def rendered_for(self, tokenizer: Any) -> str:
        """The prompt text as `tokenizer`'s own chat template renders the same turns.

        A scorer model separate from the generator measures J on the conversation written in *its*
        template, not on the generator's: its J is "how likely does this model find the answer after
        this reasoning", which only means something in the format the model was trained on. Another
        model's markup (`<|im_start|>` under a Llama-3 tokenizer) would be plain text to it, cut into
        odd pieces, and would shift every J by a prompt it never saw. The prefill and the generated
        text are plain text and the same for both models (they are the completion, re-tokenised by
        the scorer). Raw text (no chat) is continued as given by every model, so it is returned as is.
        """
        return render_prompt(tokenizer, self.chat) if self.chat else self.text


@dataclass(frozen=True)
class PromptFormat:
    """A named way to ask: system prompt (None: no system turn), worked example turns, assistant prefill."""

    name: str
    help: str
    system_prompt: str | None
    prefill: str = ""
    examples: tuple[tuple[str, str], ...] = ()

    def messages(self, question: str) -> list[Message]:
        """The chat for one question: system prompt, worked examples, the question with the answer instruction."""
        if not question.strip():
            raise InvalidRequest("the question is empty", param="prompt")
        return self.chat([{"role": "user", "content": f"{question.strip()} {ANSWER_INSTRUCTION}"}])

    def chat(self, messages: Sequence[Message]) -> list[Message]:
        """A caller's chat in this format: the system prompt is added only if the chat has none (a caller's
        own system turn wins), the worked examples go right before the conversation."""
        if not messages:
            raise InvalidRequest("messages are empty", param="messages")
        head = [m for m in messages[:1] if m["role"] in ("system", "developer")]
        if not head and self.system_prompt:
            head = [{"role": "system", "content": self.system_prompt}]
        shots: list[Message] = []
        for question, answer in self.examples:
            shots += [
                {"role": "user", "content": f"{question} {ANSWER_INSTRUCTION}"},
                {"role": "assistant", "content": answer},
            ]
        rest = list(messages[1:]) if messages[0]["role"] in ("system", "developer") else list(messages)
        return [*head, *shots, *rest]

    def render(
        self, tokenizer: Any, question: str | None = None, messages: Sequence[Message] | None = None
    ) -> RenderedPrompt:
        """Exactly one of a question or a chat, rendered with the tokenizer's chat template."""
        if (question is None) == (messages is None):
            raise InvalidRequest("give exactly one of a question or messages")
        chat = self.messages(question) if question is not None else self.chat(messages or [])
        text = render_prompt(tokenizer, chat)
        return RenderedPrompt(
            text,
            self.prefill,
            self.name,
            tuple(dict(m) for m in chat),
            encode_text(tokenizer, text, "messages" if messages is not None else "prompt"),
            encode_text(tokenizer, self.prefill) if self.prefill else (),
        )

    def identity(self) -> dict[str, Any]:
        """What changes the model's input (cache keys use this, not the name)."""
        return {"system_prompt": self.system_prompt, "prefill": self.prefill, "examples": self.examples}


PROMPT_FORMATS: dict[str, PromptFormat] = {
    f.name: f
    for f in (
        PromptFormat(
            "episode",
            "DESIGN §1: the paper's adaptive episode system prompt and a \\boxed{} answer instruction",
            EPISODE_SYSTEM_PROMPT,
        ),
        PromptFormat(
            "short",
            "a one-line episode instruction, the reply prefilled with <episode_1>",
            SHORT_EPISODE_PROMPT,
            FIRST_EPISODE,
        ),
        PromptFormat(
            "worked",
            "the short instruction, two worked episode-tagged examples, the reply prefilled with <episode_1>",
            SHORT_EPISODE_PROMPT,
            FIRST_EPISODE,
            EPISODE_EXAMPLES,
        ),
        PromptFormat(
            "stepwise",
            "the short instruction, two worked examples answered as a restatement, one episode per computation "
            "and a check, the reply prefilled with <episode_1>",
            SHORT_EPISODE_PROMPT,
            FIRST_EPISODE,
            STEPWISE_EXAMPLES,
        ),
        PromptFormat(
            "restated",
            "the short instruction, three worked one-computation examples answered as a restatement, the "
            "computation and a restatement of the result, the reply prefilled with <episode_1>",
            SHORT_EPISODE_PROMPT,
            FIRST_EPISODE,
            RESTATED_EXAMPLES,
        ),
        PromptFormat("plain", "no system prompt: the question and the \\boxed{} answer instruction only", None),
    )
}
# Chosen by measurement (tag rate, answered rate, pass@1 on the tune halves): docs/decisions.md.
DEFAULT_PROMPT_FORMAT = "worked"


def prompt_format(name: str) -> PromptFormat:
    """The preset called `name` (a clear error listing the choices otherwise)."""
    try:
        return PROMPT_FORMATS[name]
    except KeyError:
        raise InvalidRequest(
            f"unknown prompt format {name!r}: use one of {', '.join(PROMPT_FORMATS)}", param="prompt_format"
        ) from None
