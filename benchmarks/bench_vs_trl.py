"""TRL's GRPOTrainer against steerbench's embedded trainer on the same job, alternating, in one invocation.

    /work/.venvs/trl/bin/python benchmarks/bench_vs_trl.py [--job add|smollm2] [--pairs 3] [--steps 10]
        [--threads 2] [--size small|large] [--sft-steps 300] [--workdir /tmp/bench_vs_trl]

Needs TRL, which is never a steerbench dependency: run it from a separate venv, e.g.
    python3 -m venv /work/.venvs/trl && /work/.venvs/trl/bin/pip install torch==2.13.0 trl
    /work/.venvs/trl/bin/pip install --no-deps -e . && /work/.venvs/trl/bin/pip install omegaconf hydra-core ...

The job (shared/TRL_NOTES.md): one Llama (RMSNorm, RoPE, SwiGLU, MHA; small: d 128, 4 layers, 4 heads,
ffn 512; large: d 256, 6 layers, ffn 1024; untied embeddings; steerbench's 21-id char vocabulary), built
locally, warm-started once by plain supervised training on `<bos>ab+cd=<sum><eos>` and saved; both sides
load that folder. Per step: 16 two-digit addition prompts × 8 samples, ≤ 4 new tokens, temperature 1,
no top-k/top-p, stop at EOS; reward 1 iff the answer is right; group mean/std advantages; clipped
surrogate ε = 0.2, β = 0, token-mean (TRL "dapo"); one AdamW step per rollout (lr 3e-4, wd 0, clip 1.0,
constant); fp32; seed 0. steerbench drives the same model through its `model.hf_path` adapter, twice:
as configured by default (the fast path: each group's prompt scored once, `trainer.share_prompts`; torch's
fused AdamW, `trainer.fused_adamw`, which TRL's default `optim=adamw_torch_fused` runs too), and on the
reference path (`trainer.share_prompts=false trainer.fused_adamw=false`: each row scored alone, torch's
for-each AdamW), which the default equals to float rounding.

`--job smollm2`: the same comparison on a real pretrained LM, SmolLM2-135M-Instruct (30 layers, d 576, GQA
9/3, vocabulary 49152, tied embeddings; `steerbench model prepare smollm2` converts it once). Per step:
4 `arith_text` prompts (a + b after three solved examples, ~150 tokens in the model's chat template) × 4
samples, ≤ 8 new tokens, temperature 1; reward 1 iff the math reward accepts the answer (TRL gets the
same chat messages and applies the same template itself); the update as above, lr 1e-6. steerbench
runs it as `task=arith_text`: its own tokenizer, left-padded prompts, the native Llama forward.

Each side runs in its own subprocess (fresh thread pools), the order rotating pair by pair. A side's
time per step is the wall time between consecutive optimiser steps; the first is dropped (warm-up).
Printed: each side's pooled median, completion tokens per step, each steerbench side's ratio to TRL, and
each side's share of a matmul peak measured in the same invocation (the best GFLOP/s of fp32 matmuls
shaped like the model's at `--threads`), with the job's matmul FLOPs counted from the weights: sampling
one forward per fed token, training three (forward + backward) per sequence token; beside it the share of
the FLOPs a side executes (fewer with shared prompts, the default: each group's prompt once). The other
processes' CPU share during each child is printed; above 5% the absolute times are inflated (ratios less so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from machine import OtherLoad, describe

SIZES = {"small": (128, 4, 4, 512), "large": (256, 6, 4, 1024)}  # d_model, layers, heads, ffn


@dataclass(frozen=True)
class Job:
    prompts: int  # distinct prompts per step
    samples: int  # completions per prompt (GRPO group)
    new_tokens: int  # at most, per completion
    lr: float


JOBS = {"add": Job(16, 8, 4, 3e-4), "smollm2": Job(4, 4, 8, 1e-6)}
SIDES = ("trl", "steerbench", "steerbench-reference")
REFERENCE = ("trainer.share_prompts=false", "trainer.fused_adamw=false")  # the default equals it to rounding


def chars():  # type: ignore[no-untyped-def]
    from steerbench.tasks.core import TOKENIZER

    return TOKENIZER


def build_model(workdir: Path, size: str, sft_steps: int) -> Path:
    """Random-init Llama + char tokenizer, supervised warm start, saved once per size (reused after)."""
    import transformers
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors

    out = workdir / f"llama-{size}-sft{sft_steps}"
    if (out / "config.json").is_file():
        return out
    tok = chars()
    vocab = {"<pad>": tok.pad_id, "<bos>": tok.bos_id, "<eos>": tok.eos_id}
    vocab.update({c: i + 3 for i, c in enumerate(tok.CHARS)})
    core = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_id)]
    )
    hf_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", padding_side="left"
    )
    d, layers, heads, ffn = SIZES[size]
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=d,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=32,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
    )
    model = transformers.LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(sft_steps):
        ab = torch.randint(0, 100, (64, 2), generator=g).tolist()
        rows = [[tok.bos_id, *tok.encode(f"{a:02d}+{b:02d}={a + b}"), tok.eos_id] for a, b in ab]
        width = max(map(len, rows))
        ids = torch.tensor([r + [tok.pad_id] * (width - len(r)) for r in rows])
        labels = ids.masked_fill(ids == tok.pad_id, -100)
        labels[:, :7] = -100  # learn the answer, not the prompt
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.generation_config.pad_token_id = tok.pad_id
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def answer_reward(prompt: str, completion: str) -> float:
    a, b = (int(x) for x in prompt.rstrip("=").split("+"))
    return float(completion == str(a + b))


def trl_data(job: str, rows: int):  # type: ignore[no-untyped-def]
    """(TRL dataset, reward function) of the job: the same prompts and verifier steerbench's side draws."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(0)
    if job == "add":
        ab = torch.randint(0, 100, (rows, 2), generator=g).tolist()

        def reward(prompts, completions, **_):  # type: ignore[no-untyped-def]
            return [answer_reward(p, c) for p, c in zip(prompts, completions, strict=True)]

        return Dataset.from_list([{"prompt": f"{a:02d}+{b:02d}="} for a, b in ab]), reward
    from steerbench.rewards import compute_score_with_acc
    from steerbench.tasks.text import arith_messages

    ab = torch.randint(0, 10, (rows, 2), generator=g).tolist()

    def math_reward(prompts, completions, answer, **_):  # type: ignore[no-untyped-def]
        return [
            compute_score_with_acc("arith_text", c[-1]["content"], truth)["acc"]
            for c, truth in zip(completions, answer, strict=True)
        ]

    data = [{"prompt": arith_messages(a, b), "answer": str(a + b)} for a, b in ab]
    return Dataset.from_list(data), math_reward


def run_trl(model_dir: Path, steps: int, job: str) -> dict:
    import transformers
    from trl import GRPOConfig, GRPOTrainer

    spec = JOBS[job]
    data, reward = trl_data(job, spec.prompts * (steps + 1))

    marks: list[float] = []
    tokens: list[float] = []

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            marks.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kw):  # type: ignore[no-untyped-def]
            if logs and "completions/mean_length" in logs:
                tokens.append(logs["completions/mean_length"] * spec.prompts * spec.samples)

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl_out"),  # nothing is saved; not beside the model
        per_device_train_batch_size=spec.prompts * spec.samples,
        num_generations=spec.samples,
        max_completion_length=spec.new_tokens,
        temperature=1.0,
        top_p=1.0,
        beta=0.0,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        learning_rate=spec.lr,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_steps=steps,
        num_iterations=1,
        gradient_accumulation_steps=1,
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        seed=0,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        shuffle_dataset=False,
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok
    )
    trainer.add_callback(Clock())
    trainer.train()
    return {"step_s": [b - a for a, b in zip(marks, marks[1:], strict=False)], "tokens": tokens[1:]}


TASKS = {  # steerbench's side of each job
    "add": ["task=add", "task.digits=2"],
    "smollm2": ["task=arith_text", f"task.max_new_tokens={JOBS['smollm2'].new_tokens}"],
}


def run_steerbench(model_dir: Path, steps: int, threads: int, reference: bool, job: str) -> dict:
    from steerbench.config import compose
    from steerbench.local.trainer import build_policy, build_task, init_state, rl_step

    spec = JOBS[job]
    cfg = compose(
        [
            f"model.hf_path={model_dir}",
            *TASKS[job],
            "method=grpo",
            f"trainer.prompts_per_step={spec.prompts}",
            f"trainer.samples_per_prompt={spec.samples}",
            "trainer.ppo_epochs=1",
            "trainer.minibatches=1",
            f"trainer.lr={spec.lr}",
            "trainer.weight_decay=0.0",
            "trainer.grad_clip=1.0",
            "trainer.temperature=1.0",
            f"trainer.threads={threads}",
            "method.clip_low=0.2",
            "method.clip_high=0.2",
            "method.loss_agg_mode=token-mean",
            *(REFERENCE if reference else ()),
        ]
    )
    torch.set_num_threads(threads)
    task = build_task(cfg)
    state = init_state(cfg, build_policy(cfg, task))
    marks, tokens = [time.perf_counter()], []
    for _ in range(steps):
        row = rl_step(cfg, task, state)
        marks.append(time.perf_counter())
        tokens.append(row["len/response_mean"] * spec.prompts * spec.samples)
    return {"step_s": [b - a for a, b in zip(marks[1:], marks[2:], strict=False)], "tokens": tokens[1:]}


def matmul_peak(d: int, ffn: int, rows: int) -> float:
    """Best fp32 GFLOP/s over matmuls shaped like the model's (rows × d) @ (d × ffn) and back."""
    a, w1, w2 = torch.randn(rows, d), torch.randn(d, ffn), torch.randn(ffn, d)
    best = 0.0
    for _ in range(20):
        start = time.perf_counter()
        for _ in range(10):
            (a @ w1) @ w2
        best = max(best, 10 * 2 * 2 * rows * d * ffn / (time.perf_counter() - start))
    return best / 1e9


def job_gflop(weights: int, job: Job, prompt_len: float, new_tokens: float, prompt_rows: int) -> float:
    """Matmul FLOPs of one step: 2·N per token forward (N: the model's matmul weights, LM head included),
    with the prompt run for `prompt_rows` rows (every row: the job's FLOPs; one per distinct prompt: what
    `trainer.share_prompts` executes)."""
    rows = job.prompts * job.samples
    sample_tokens = prompt_rows * prompt_len + rows * (new_tokens - 1)  # prefill, then one token per step
    train_tokens = prompt_rows * prompt_len + rows * new_tokens
    return 2 * weights * (sample_tokens + 3 * train_tokens) / 1e9


def job_model(args: argparse.Namespace) -> tuple[Path, float]:
    """(model directory, mean prompt length in tokens) of the job."""
    if args.job == "add":
        return build_model(args.workdir, args.size, args.sft_steps), 7
    from transformers import AutoTokenizer

    from steerbench.local.pretrained import prepare
    from steerbench.tasks.chat import prompt_ids
    from steerbench.tasks.text import arith_messages

    model_dir = prepare("smollm2", log=lambda _msg: None).path
    tok = AutoTokenizer.from_pretrained(model_dir)
    return model_dir, statistics.mean(
        len(prompt_ids(tok, arith_messages(a, b))) for a in range(10) for b in range(10)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--job", choices=sorted(JOBS), default="add")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--sft-steps", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_vs_trl"))
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    job = JOBS[args.job]
    if args.side:  # child: one side's run, JSON on the last stdout line
        result = (
            run_trl(args.model_dir, args.steps, args.job)
            if args.side == "trl"
            else run_steerbench(
                args.model_dir, args.steps, args.threads, args.side == "steerbench-reference", args.job
            )
        )
        print(json.dumps(result))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model_dir, prompt_len = job_model(args)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    params = sum(p.numel() for p in model.parameters())
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    d, ffn = model.config.hidden_size, model.config.intermediate_size
    rows = job.prompts * job.samples
    peak = matmul_peak(d, ffn, rows * 11)
    results: dict[str, dict[str, list[float]]] = {s: {"step_s": [], "tokens": [], "other": []} for s in SIDES}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    for pair in range(args.pairs):
        for side in SIDES[pair % 3 :] + SIDES[: pair % 3]:
            cmd = [sys.executable, __file__, "--side", side, "--model-dir", str(model_dir), "--job", args.job]
            cmd += ["--steps", str(args.steps), "--threads", str(args.threads)]
            with OtherLoad() as load:
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{side} run failed:\n{out.stderr[-4000:]}")
            got = json.loads(out.stdout.strip().splitlines()[-1])
            results[side]["step_s"] += got["step_s"]
            results[side]["tokens"] += got["tokens"]
            results[side]["other"].append(load.share or 0.0)
            print(
                f"pair {pair + 1} {side:20s}: median {statistics.median(got['step_s']):.3f} s/step, "
                f"{describe(load.share)}",
                flush=True,
            )
    print(
        f"\njob {args.job}: {model.config.model_type} ({params:,} parameters), {job.prompts}×{job.samples} "
        f"completions/step, prompts {prompt_len:.0f} tokens, ≤{job.new_tokens} new tokens, {args.threads} "
        f"threads, {args.pairs} alternating pairs × {args.steps} steps (first dropped)"
    )
    print(f"matmul peak (fp32, {args.threads} threads, model-shaped): {peak:.1f} GFLOP/s")
    medians = {}
    for side, r in results.items():
        med = medians[side] = statistics.median(r["step_s"])
        toks = statistics.mean(r["tokens"])
        new_tokens = toks / rows
        gflop = job_gflop(weights, job, prompt_len, new_tokens, rows)
        executed = (
            job_gflop(weights, job, prompt_len, new_tokens, job.prompts)
            if side == "steerbench"  # shared prompts
            else gflop
        )
        print(
            f"{side:20s}: {med:.3f} s/step median (min {min(r['step_s']):.3f}), {toks:.0f} completion "
            f"tokens/step; the job's {gflop:.2f} GFLOP/step: {100 * gflop / med / peak:.0f}% of the matmul "
            f"peak; executed {executed:.2f} GFLOP/step: {100 * executed / med / peak:.0f}%; other processes "
            f"{100 * max(r['other']):.0f}% CPU at most"
        )
    for side in SIDES[1:]:
        print(f"ratio {side} / TRL: {medians[side] / medians['trl']:.2f} (target ≤ 0.5)")


if __name__ == "__main__":
    main()
