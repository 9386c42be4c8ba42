"""How much of J the answer suffix's own token loses to merged tokens
(docs/evaluation.md, issue 10: the exit never fired).

J scores `answer + target_suffix` on the canonical tokens of that text, e.g. `3 3 }`. After
`probe + answer` a model may put its mass on a merged token that also starts with the suffix (SmolLM2:
`}.`). For correct one-episode add2 solutions of the graded-arithmetic suite (worked format, final cut),
this prints the median P(suffix token) and the median of Σ P(tokens whose text starts with the suffix)
/ P(suffix token): the factor by which J understates the string-level probability of the suffix.

    python benchmarks/probe_suffix_mass.py [--problems 60]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from l2t_core.eval.tasks.arithmetic import arithmetic_problems
from l2t_core.models import load_model
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.reward import RewardConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=60, help="tune-half problems to read (add2 ones are used)")
    args = parser.parse_args()
    loaded = load_model("default")
    tokenizer, reward = loaded.tokenizer, RewardConfig()
    pipeline = ReasoningPipeline.from_model(loaded, prompt_format="worked")
    (suffix_id,) = tokenizer(reward.target_suffix, add_special_tokens=False)["input_ids"]
    starting = torch.tensor(
        [i for i in range(len(tokenizer)) if tokenizer.decode([i]).startswith(reward.target_suffix)]
    )
    own, factors = [], []
    for problem in arithmetic_problems(400, 0)[0::2][: args.problems]:
        if problem.level != "add2":
            continue
        expression = problem.question.removeprefix("What is ").removesuffix("?")
        episode = f"<episode_1>{expression} = {problem.answer}</episode_1>\n"
        text = pipeline.prompt(problem.question).text + episode + reward.probe + problem.answer
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            p = torch.softmax(loaded.model(input_ids=ids).logits[0, -1].float(), -1)
        own.append(float(p[suffix_id]))
        factors.append(float(p[starting].sum() / p[suffix_id]))
    print(
        f"{len(factors)} episodes: median P({reward.target_suffix!r}) {statistics.median(own):.4f}; "
        f"median factor {statistics.median(factors):.0f} (min {min(factors):.0f}, max {max(factors):.0f})"
    )


if __name__ == "__main__":
    main()
