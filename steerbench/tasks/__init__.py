"""The tasks, their verifiers and prompt rows: shared domain code of both backends and the analysis.

- ``core``: the Task protocol, the character tokenizer, ``add`` and ``countdown``, ``prompt_tensor``, ``score``;
- ``tail``: the 256-token long-tail vocabulary and its tasks (``countdown_tail``, ``steps``);
- ``text``: a pretrained LM's chat prompts in its own tokenizer (``text``, ``arith_text``), scored by
  ``steerbench.math_answer``; ``chat``: verl-format parquet rows, chat rendering, left padding;
- ``registry``: ``get_task(name, **knobs)``; ``problem_from_row``: the task and problem of a prepared verl row.

Used by the embedded backend (``steerbench.local``), verl's data preparation and reward, and the Ω analysis.
Imports no backend: only ``steerbench.errors`` and ``steerbench.math_answer`` (``chat.load_hf_tokenizer``
loads a model's tokenizer with transformers itself).
"""
