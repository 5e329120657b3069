"""The 1-digit addition prompts of docs/omega_validation.md's real-LM section (verl-format parquet).

    python docs/omega/real_lm/make_arith_fewshot.py /tmp/arith_fewshot.parquet

200 problems a + b with a, b uniform in 0..9 (random.Random(0)), each a chat of three solved examples and
the question, so that SmolLM2-135M-Instruct answers in the "Answer: N" form the math reward parses
(steerbench.rewards: the last "Answer:" line, compared with the ground truth). `steerbench data prepare
--task add` prompts ask for \\boxed{}, which this model never wrote in 32 samples (0 correct), and a
zero-shot "Answer: <number>" instruction also gave 0/32; with these three shots it answered 13/32
correctly (5 of 8 groups of 4 with reward variance).
"""

import random
import sys

import pandas as pd

SHOTS = [(2, 3), (7, 1), (4, 4)]


def user(a: int, b: int) -> str:
    return f"What is {a} + {b}? Reply with one line: Answer: <number>"


def main(out: str) -> None:
    rng = random.Random(0)
    rows = []
    for i in range(200):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        msgs = []
        for x, y in SHOTS:
            msgs += [
                {"role": "user", "content": user(x, y)},
                {"role": "assistant", "content": f"Answer: {x + y}"},
            ]
        msgs.append({"role": "user", "content": user(a, b)})
        rows.append(
            dict(
                data_source="arith_1digit_fewshot",
                prompt=msgs,
                ability="arithmetic",
                reward_model={"ground_truth": str(a + b), "style": "rule"},
                extra_info={"index": i, "raw_problem": f"{a}+{b}", "split": "test"},
            )
        )
    pd.DataFrame(rows).to_parquet(out)


if __name__ == "__main__":
    main(sys.argv[1])
