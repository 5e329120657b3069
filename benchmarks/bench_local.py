"""Sampling throughput: our KV-cache sampler on TinyPolicy vs Hugging Face `generate` on a same-size Llama.

    python benchmarks/bench_local.py [--batch 64] [--prompt-len 8] [--new-tokens 32] [--repeats 5] [--threads 1]

Both models are randomly initialised with the embedded default's shape (2 layers, 4 heads, d_model 128,
MLP width 512, char vocabulary) and sample at temperature 1 with no early stop (no EOS), so both
produce exactly batch × new_tokens tokens. Prints the best-of-`repeats` tokens/s of each and the ratio
ours / HF (> 1: ours is faster). The two are timed alternately, so a busy machine slows both alike;
`--threads 1` (default) avoids intra-op thread stalls when other processes share the cores.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch


def best_tokens_per_s(fns: dict[str, Callable[[], None]], tokens: int, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` tokens/s of each function, timed in alternation after one warm-up call each."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: tokens / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    from steerbench.local.model import ModelConfig, TinyPolicy
    from steerbench.local.sampler import sample
    from steerbench.local.tasks import TOKENIZER

    cfg = ModelConfig(vocab_size=TOKENIZER.vocab_size)
    torch.manual_seed(0)
    ours = TinyPolicy(cfg).eval()
    hf = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.d_model,
            intermediate_size=4 * cfg.d_model,
            num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_head,
            max_position_embeddings=cfg.max_seq_len,
            pad_token_id=TOKENIZER.pad_id,
        )
    ).eval()
    prompts = torch.randint(3, cfg.vocab_size, (args.batch, args.prompt_len))
    tokens = args.batch * args.new_tokens

    def run_ours() -> None:
        gen = torch.Generator().manual_seed(0)
        sample(ours, prompts, args.new_tokens, 1.0, eos_id=-1, generator=gen)  # eos -1: never stops early

    @torch.no_grad()
    def run_hf() -> None:
        hf.generate(
            prompts,
            attention_mask=torch.ones_like(prompts),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
            eos_token_id=None,
            pad_token_id=TOKENIZER.pad_id,
        )

    tps = best_tokens_per_s({"ours": run_ours, "hf": run_hf}, tokens, args.repeats)
    ours_tps, hf_tps = tps["ours"], tps["hf"]
    print(f"host: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(
        f"batch {args.batch}, prompt {args.prompt_len}, new tokens {args.new_tokens}, best of {args.repeats}"
    )
    print(f"steerbench KV-cache sampler : {ours_tps:10.0f} tokens/s")
    print(f"transformers generate (Llama): {hf_tps:10.0f} tokens/s")
    print(f"ratio ours / HF              : {ours_tps / hf_tps:10.2f}")


if __name__ == "__main__":
    main()
