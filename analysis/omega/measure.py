"""Measure the per-token entropy change of ONE real optimiser step and every estimator's prediction of it.

Protocol (REFERENCES A.10, C.13):
  1. teacher-force the rollouts through a deep copy of the policy and record, at every response
     position, log π(k|s_t), the full-vocabulary entropy H(s_t) and E_t = Σ_j π_j²(log π_j + H), in
     float32 (or the dtype asked for), chunked over positions so a 150k vocabulary fits in memory;
  2. take one step of ``sgd`` or ``adam`` (fresh state, no weight decay) on the method's loss from
     ``steerbench.methods.compute_policy_loss`` (π_old = π_θ, so r = 1 and nothing is clipped);
  3. re-run the same prefixes and take ΔH = H_after − H_before;
  4. predict ΔH with each estimator; ``jvp`` is ∇θH(s_t)·Δθ with the real Δθ = θ_after − θ_before.

The policy only needs ``forward(tokens (B, L)) -> logits (B, L, V)`` (an object with ``.logits``, as a
Hugging Face model returns, is accepted too). The caller's model is never modified.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from steerbench.analysis.omega.estimators import ESTIMATORS, EstimatorInputs
from steerbench.errors import RunFailed, UsageError
from steerbench.methods import compute_policy_loss, get_method
from steerbench.methods.batch import PolicyBatch

OPTIMIZERS = ("sgd", "adam")
LossFn = Callable[[Any], torch.Tensor]  # PolicyBatch → scalar loss


@dataclass
class RolloutBatch:
    """Rollouts to score: tokens ``(B, P+T)`` long, prompt_len P, per-token tensors ``(B, T)``."""

    tokens: torch.Tensor
    prompt_len: int
    response_mask: torch.Tensor
    advantages: torch.Tensor
    rewards: torch.Tensor | None = None  # (B,)
    group_index: torch.Tensor | None = None  # (B,)
    ref_log_prob: torch.Tensor | None = None  # (B, T) the reference policy's, for methods that need one (kl)

    def __post_init__(self) -> None:
        B, total = self.tokens.shape
        T = total - self.prompt_len
        if self.prompt_len < 1 or T < 1:
            raise UsageError(
                f"prompt_len={self.prompt_len} must be in [1, {total - 1}] for tokens of length {total}"
            )
        for name in ("response_mask", "advantages"):
            if tuple(getattr(self, name).shape) != (B, T):
                raise UsageError(f"{name} has shape {tuple(getattr(self, name).shape)}, expected {(B, T)}")


@dataclass
class StepResult:
    """Per-token measurement of one step; tensors ``(B, T)`` (float64 on CPU), padding masked out."""

    measured: torch.Tensor
    predicted: dict[str, torch.Tensor]
    advantages: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor
    response_mask: torch.Tensor
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    step_norm: float = 0.0  # ‖Δθ‖₂


def _logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    out = model(tokens)
    return out.logits if hasattr(out, "logits") else out


def _position_chunk(batch: int, vocab: int, budget_bytes: int) -> int:
    return max(1, budget_bytes // max(1, 4 * 4 * batch * vocab))


def entropy_stats(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    dtype: torch.dtype = torch.float32,
    chunk: int | None = None,
    budget_bytes: int = 256 * 2**20,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log π(targets), H, E = Σ_j π_j²(log π_j + H)) of softmax(logits/τ), logits ``(B, T, V)``.

    Computed in ``dtype`` chunk by chunk over positions, so only ``chunk`` positions of the full vocabulary
    are ever upcast at once. Differentiable (used inside forward-mode and double-backward autodiff).
    """
    B, T, V = logits.shape
    step = chunk or _position_chunk(B, V, budget_bytes)
    lps, hs, es = [], [], []
    for s in range(0, T, step):
        log_p = torch.log_softmax(logits[:, s : s + step].to(dtype) / temperature, dim=-1)
        p = log_p.exp()
        # p·log p is 0 where p = 0: a −inf logit (a masked token) has log p = −inf, and 0·(−inf) would be
        # NaN in the value, its tangent and its gradient; log p is zeroed there BEFORE the product
        safe_log_p = torch.where(p > 0, log_p, torch.zeros_like(log_p))
        h = -(p * safe_log_p).sum(-1)
        lps.append(log_p.gather(-1, targets[:, s : s + step, None]).squeeze(-1))
        hs.append(h)
        es.append((p * p * (safe_log_p + h[..., None])).sum(-1))
    return torch.cat(lps, 1), torch.cat(hs, 1), torch.cat(es, 1)


def response_stats(
    model: nn.Module,
    tokens: torch.Tensor,
    prompt_len: int,
    temperature: float,
    dtype: torch.dtype = torch.float32,
    row_chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced (log π, H, E) at the response positions, each ``(B, T)``; logits at P−1+t predict t."""
    rows = row_chunk or tokens.shape[0]
    outs = []
    for s in range(0, tokens.shape[0], rows):
        tok = tokens[s : s + rows]
        logits = _logits(model, tok[:, :-1])[:, prompt_len - 1 :]
        outs.append(entropy_stats(logits, tok[:, prompt_len:], temperature, dtype))
    return tuple(torch.cat([o[i] for o in outs], 0) for i in range(3))  # type: ignore[return-value]


def jvp_entropy_change(
    model: nn.Module,
    tokens: torch.Tensor,
    prompt_len: int,
    delta: dict[str, torch.Tensor],
    temperature: float,
    dtype: torch.dtype = torch.float32,
    mode: str = "auto",
    row_chunk: int | None = None,
) -> torch.Tensor:
    """∇θH(s_t)·Δθ at every response position ``(B, T)``: one directional derivative, batched over positions.

    ``mode="forward"``: ``torch.func.jvp`` of θ ↦ H(·) along Δθ (about one extra forward).
    ``mode="double_backward"``: with a dummy u ``(B, T)``, g(u) = ∇θ Σ_t u_t H_t, then ∂(g·Δθ)/∂u_t.
    ``mode="auto"``: forward mode, falling back to double backward if an op lacks a forward-mode rule.
    Parameters missing from ``delta`` are held fixed.

    A model with a ``pad_id`` (``steerbench.local.hf.HFPolicy``) masks each row's leading pads out of
    attention, so a padded row scores exactly like the same row unpadded; rows are differentiated with
    their leading pads cut off (grouped by pad count). Differentiating through the pads is not only waste:
    a pad position's hidden state can be exactly 0 (Hugging Face zero-initialises the pad embedding row),
    where RMSNorm's Jacobian is 1/√ε (1000 at ε = 1e-6), so its tangent grows ~0.4·hidden× a layer at a
    0.02 init (~200× at hidden 512), overflows to inf around layer 17 (RMSNorm runs in float32 even in a
    float64 model) and the masked attention weight's 0·inf turns every later position's tangent into NaN.
    """
    from torch.func import functional_call, jvp

    names = [n for n, p in model.named_parameters() if n in delta]
    params = {n: p.detach() for n, p in model.named_parameters() if n in delta}
    tangents = {n: delta[n].to(params[n].dtype) for n in names}
    rows = row_chunk or tokens.shape[0]

    def entropy_of(p: dict[str, torch.Tensor], tok: torch.Tensor, plen: int) -> torch.Tensor:
        out = functional_call(model, p, (tok[:, :-1],))
        logits = (out.logits if hasattr(out, "logits") else out)[:, plen - 1 :]
        return entropy_stats(logits, tok[:, plen:], temperature, dtype)[1]

    def forward_mode(tok: torch.Tensor, plen: int) -> torch.Tensor:
        return jvp(lambda p: entropy_of(p, tok, plen), (params,), (tangents,))[1]

    def double_backward(tok: torch.Tensor, plen: int) -> torch.Tensor:
        leaves = {n: p.clone().requires_grad_(True) for n, p in params.items()}
        with torch.enable_grad():
            h = entropy_of(leaves, tok, plen)
            u = torch.zeros_like(h, requires_grad=True)
            grads = torch.autograd.grad(
                (h * u).sum(), list(leaves.values()), create_graph=True, allow_unused=True
            )
            dot = sum((g * tangents[n]).sum() for n, g in zip(leaves, grads, strict=True) if g is not None)
            if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
                return torch.zeros_like(h)
            return torch.autograd.grad(dot, u)[0].detach()

    if mode not in ("auto", "forward", "double_backward"):
        raise UsageError(f"jvp mode={mode!r} is unknown; choose auto, forward or double_backward")
    pad = getattr(model, "pad_id", None)
    outs = []
    with _math_attention():
        for s in range(0, tokens.shape[0], rows):
            chunk = tokens[s : s + rows]
            parts = []
            for cut, idx in _left_pad_groups(chunk, prompt_len, pad):
                plen = prompt_len - cut
                fwd, dbl = partial(forward_mode, plen=plen), partial(double_backward, plen=plen)
                parts.append((idx, _one_chunk(chunk[idx, cut:], mode, fwd, dbl)))
            out = parts[0][1].new_zeros((chunk.shape[0], tokens.shape[1] - prompt_len))
            for idx, part in parts:
                out[idx] = part
            outs.append(out)
    return torch.cat(outs, 0)


def _left_pad_groups(
    tokens: torch.Tensor, prompt_len: int, pad_id: int | None
) -> list[tuple[int, torch.Tensor]]:
    """(leading pads to cut, row indices) per distinct count; at least one prompt token is kept."""
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    if pad_id is None:
        return [(0, rows)]
    lead = ((tokens != pad_id).long().cumsum(1) == 0).sum(1).clamp(max=prompt_len - 1)
    return [(int(k), rows[lead == k]) for k in torch.unique(lead).tolist()]


def _math_attention() -> Any:
    """Fused CPU/GPU attention kernels lack forward-mode and double-backward rules; the math one has both."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)
    except ImportError:  # torch < 2.3
        import contextlib

        return contextlib.nullcontext()


def _one_chunk(
    tok: torch.Tensor,
    mode: str,
    forward_mode: Callable[[torch.Tensor], torch.Tensor],
    double_backward: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    if mode == "double_backward":
        return double_backward(tok)
    try:
        return forward_mode(tok).detach()
    except (RuntimeError, NotImplementedError):
        if mode == "forward":
            raise
        return double_backward(tok)


def default_loss_fn(method: str, **knobs: Any) -> LossFn:
    """The method's loss through ``steerbench.methods.compute_policy_loss``."""

    def loss_fn(batch: Any) -> torch.Tensor:

        loss, metrics = compute_policy_loss(method, batch, **knobs)
        loss_fn.metrics = metrics  # type: ignore[attr-defined]
        return loss

    return loss_fn


def _needs_entropy_grad(method: str) -> bool:
    try:
        return "entropy_grad" in get_method(method).needs
    except ImportError:
        return False


def measure_entropy_change(
    model: nn.Module,
    batch: RolloutBatch,
    method: str = "grpo",
    optimizer: str = "sgd",
    lr: float = 1e-4,
    temperature: float = 1.0,
    estimators: Sequence[str] = tuple(ESTIMATORS),
    knobs: dict[str, Any] | None = None,
    loss_fn: LossFn | None = None,
    dtype: torch.dtype = torch.float32,
    jvp_mode: str = "auto",
    row_chunk: int | None = None,
) -> StepResult:
    """One real optimiser step on a deep copy of ``model``; measured and predicted ΔH per response token.

    ``loss_fn`` (PolicyBatch → scalar) replaces the method's loss, e.g. for closed-form testbeds.
    ``dtype`` is the dtype of the model copy and of every entropy computation (float32 by default; a
    bfloat16 copy keeps float32 statistics). ``row_chunk`` rows go through each forward and backward
    (None: all at once), so memory scales with the chunk, not the batch. Tensors may live on any device;
    the result is on the CPU.
    """
    check_options(optimizer, lr, estimators, temperature)

    policy = copy.deepcopy(model).to(dtype)
    policy.eval()
    for p in policy.parameters():
        p.requires_grad_(True)
    stat = stats_dtype(dtype)
    tokens, P = batch.tokens, batch.prompt_len
    mask = batch.response_mask.to(stat)
    adv = batch.advantages.to(stat) * mask

    with torch.no_grad():
        lp0, h0, e0 = response_stats(policy, tokens, P, temperature, stat, row_chunk)

    # -- the real step, with the method's loss (r = 1: π_old is the policy being stepped) --
    fn = loss_fn or default_loss_fn(method, **(knobs or {}))
    entropy_grad = loss_fn is None and _needs_entropy_grad(method)
    loss, grad_lp, grad_h = _token_gradients(fn, method, batch, lp0, h0, adv, stat, entropy_grad)
    before, delta = _step(policy, batch, temperature, stat, grad_lp, grad_h, row_chunk, optimizer, lr)

    with torch.no_grad():
        _, h1, _ = response_stats(policy, tokens, P, temperature, stat, row_chunk)
        for n, p in policy.named_parameters():  # back to θ_before for the jvp
            p.copy_(before[n])
    measured = (h1 - h0) * mask

    inputs = EstimatorInputs(
        log_prob=lp0,
        old_log_prob=lp0,
        advantages=adv,
        entropy=h0,
        response_mask=batch.response_mask,
        expected_term=e0,
        clip_active=None,
        agg_weight=_aggregation_weights(grad_lp, adv, mask) * mask,
        lr=lr / temperature**2,
    )
    if "jvp" in estimators:
        inputs.jvp = jvp_entropy_change(policy, tokens, P, delta, temperature, stat, jvp_mode, row_chunk)
    predicted = {name: ESTIMATORS[name](inputs).detach().to(torch.float64).cpu() for name in estimators}
    check_finite_predictions(predicted, batch.response_mask)
    metrics = dict(getattr(fn, "metrics", {}) or {})
    step_norm = math.sqrt(sum(float((d.to(torch.float64) ** 2).sum()) for d in delta.values()))
    return StepResult(
        measured=measured.detach().to(torch.float64).cpu(),
        predicted=predicted,
        advantages=adv.detach().to(torch.float64).cpu(),
        log_prob=lp0.to(torch.float64).cpu(),
        entropy=h0.to(torch.float64).cpu(),
        response_mask=batch.response_mask.detach().bool().cpu(),
        loss=float(loss.detach()),
        metrics=metrics,
        step_norm=step_norm,
    )


def _token_gradients(
    fn: LossFn,
    method: str,
    batch: RolloutBatch,
    lp0: torch.Tensor,
    h0: torch.Tensor,
    adv: torch.Tensor,
    stat: torch.dtype,
    entropy_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The loss and its gradient per token: ∂L/∂log π_t and, when the loss differentiates the entropy,
    ∂L/∂H_t. The loss sees leaves standing for log π_t and H_t, so the step's gradient is
    Σ_t ∂L/∂log π_t ∇θ log π_t (+ ∂L/∂H_t ∇θ H_t), backpropagated a row chunk at a time (``_step``)."""
    log_prob_leaf = lp0.clone().requires_grad_(True)
    entropy_leaf = h0.clone().requires_grad_(entropy_grad)
    pb = PolicyBatch(
        log_prob=log_prob_leaf,
        old_log_prob=lp0,
        advantages=adv,
        response_mask=batch.response_mask,
        entropy=entropy_leaf,
        group_index=batch.group_index,
        rewards=None if batch.rewards is None else batch.rewards.to(stat),
        old_entropy=h0,  # π_old is the policy being stepped
        ref_log_prob=None if batch.ref_log_prob is None else batch.ref_log_prob.to(stat),
    )
    loss = fn(pb)
    if not torch.isfinite(loss):
        raise UsageError(f"method {method!r} returned a non-finite loss ({loss.item()}) on this batch")
    leaves = [log_prob_leaf, entropy_leaf] if entropy_grad else [log_prob_leaf]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    grad_lp = torch.zeros_like(lp0) if grads[0] is None else grads[0]
    grad_h = grads[1] if entropy_grad else None
    return loss, grad_lp, grad_h


def _step(
    policy: nn.Module,
    batch: RolloutBatch,
    temperature: float,
    stat: torch.dtype,
    grad_lp: torch.Tensor,
    grad_h: torch.Tensor | None,
    row_chunk: int | None,
    optimizer: str,
    lr: float,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One ``optimizer`` step of ``policy`` along the per-token gradients; θ before it, and Δθ."""
    params = [p for p in policy.parameters() if p.requires_grad]
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    for p in params:
        p.grad = None
    _backprop_token_weights(
        policy, batch.tokens, batch.prompt_len, temperature, stat, grad_lp, grad_h, row_chunk
    )
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr)
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=0.0)
    opt.step()
    return before, {n: p.detach() - before[n] for n, p in policy.named_parameters()}


def _aggregation_weights(grad_lp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """c_t: the token's weight in the aggregation, read off ∂L/∂log π_t = −c_t·I_clip·r·A (r = 1 here);
    where A = 0, the token-mean weight."""
    default_w = mask / mask.sum().clamp_min(1.0)
    nonzero = adv.abs() > 0
    return torch.where(nonzero, -grad_lp / torch.where(nonzero, adv, torch.ones_like(adv)), default_w)


def check_finite_predictions(predicted: dict[str, torch.Tensor], response_mask: torch.Tensor) -> None:
    """Raise :class:`RunFailed` if any estimator predicted NaN or ±inf at a valid response token.

    A non-finite prediction would otherwise surface only as a null Pearson (NaN → null in the JSON)."""
    valid = response_mask.detach().bool().cpu()
    for name, pred in predicted.items():
        bad = ~torch.isfinite(pred) & valid
        if bad.any():
            rows, cols = bad.nonzero()[0].tolist()
            raise RunFailed(
                f"estimator {name!r} predicted a non-finite ΔH (NaN or inf) at {int(bad.sum())} of "
                f"{int(valid.sum())} response tokens (first: row {rows}, position {cols}); its statistics "
                "would be undefined (null). For jvp, the tangent ∇θ(·)·Δθ overflowed to inf somewhere inside the "
                "model's forward (e.g. a hidden state of exactly 0 under RMSNorm, repeated over many layers)"
            )


def stats_dtype(model_dtype: torch.dtype) -> torch.dtype:
    """Entropies and the loss in float32 at least: a half-precision model still gets float32 statistics."""
    return model_dtype if model_dtype == torch.float64 else torch.float32


# Bytes one ``measure_entropy_change`` adds to what was resident before it (forward, backward and JVP over
# ``row_chunk`` sequences), fitted by ``benchmarks/omega_memory.py`` on the CPU in float32 (8 random Llamas,
# 2–30 layers, vocabularies 4k–49k; worst error 23%): the model's copy, its gradient and the step; float32
# copies of each token's vocabulary row; activations per layer and hidden unit; a fixed overhead.
MEMORY_MODEL = {"param_copies": 3.24, "vocab_rows": 12.48, "activations": 15.38, "overhead": 238 * 2**20}


@dataclass
class MemoryShape:
    """What the memory of one measurement depends on."""

    params: int  # parameter count
    layers: int
    hidden: int
    vocab: int
    dtype_bytes: int  # the measured copy's dtype (statistics stay float32)

    @classmethod
    def of(cls, model: nn.Module, dtype: torch.dtype) -> MemoryShape:
        hf = getattr(getattr(model, "lm", None), "config", None)  # HFPolicy; else the tiny model's cfg
        tiny = getattr(model, "cfg", None)
        layers = getattr(hf, "num_hidden_layers", None) or getattr(tiny, "n_layer", 1)
        hidden = getattr(hf, "hidden_size", None) or getattr(tiny, "d_model", 1)
        vocab = getattr(model, "vocab_size", None) or getattr(tiny, "vocab_size", 1)
        return cls(
            params=sum(p.numel() for p in model.parameters()),
            layers=int(layers),
            hidden=int(hidden),
            vocab=int(vocab),
            dtype_bytes=torch.tensor([], dtype=dtype).element_size(),
        )

    def fixed_bytes(self) -> float:
        return MEMORY_MODEL["param_copies"] * self.params * self.dtype_bytes + MEMORY_MODEL["overhead"]

    def token_bytes(self) -> float:
        vocab = MEMORY_MODEL["vocab_rows"] * 4 * self.vocab
        return vocab + MEMORY_MODEL["activations"] * self.layers * self.hidden * self.dtype_bytes

    def predicted_peak(self, row_chunk: int, length: int) -> int:
        """Bytes above the resident set before the measurement, for ``row_chunk`` rows of ``length`` tokens."""
        return int(self.fixed_bytes() + row_chunk * length * self.token_bytes())


def fit_row_chunk(rows: int, length: int, shape: MemoryShape, budget_bytes: float) -> int:
    """The most rows per pass (≤ rows, ≥ 1) whose predicted memory fits in ``budget_bytes``."""
    free = budget_bytes - shape.fixed_bytes()
    return max(1, min(rows, int(free // (max(1, length) * shape.token_bytes()))))


def _backprop_token_weights(
    policy: nn.Module,
    tokens: torch.Tensor,
    prompt_len: int,
    temperature: float,
    dtype: torch.dtype,
    grad_lp: torch.Tensor,
    grad_h: torch.Tensor | None,
    row_chunk: int | None,
) -> None:
    """Accumulate ∇θ Σ_t [g_t log π_t + h_t H_t] into ``.grad``, ``row_chunk`` rows per forward/backward."""
    rows = row_chunk or tokens.shape[0]
    for s in range(0, tokens.shape[0], rows):
        tok = tokens[s : s + rows]
        logits = _logits(policy, tok[:, :-1])[:, prompt_len - 1 :]
        lp, h, _ = entropy_stats(logits, tok[:, prompt_len:], temperature, dtype)
        surrogate = (lp * grad_lp[s : s + rows].detach()).sum()
        if grad_h is not None:
            surrogate = surrogate + (h * grad_h[s : s + rows].detach()).sum()
        surrogate.backward()


def check_options(optimizer: str, lr: float, estimators: Sequence[str], temperature: float = 1.0) -> None:
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"optimizer {optimizer!r} is unknown; choose one of {', '.join(OPTIMIZERS)}")
    if not 0 < lr < math.inf:
        raise UsageError(f"lr={lr} is out of range; the learning rate must be > 0 and finite (e.g. 1e-4)")
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        raise UsageError(f"unknown estimator(s) {', '.join(unknown)}; choose from {', '.join(ESTIMATORS)}")
    if not 0 < temperature < math.inf:
        raise UsageError(f"temperature={temperature} must be > 0 and finite")


def quadrant_labels(advantages: torch.Tensor, log_prob: torch.Tensor, entropy: torch.Tensor) -> list[str]:
    """Quadrant per token (flattened): sign of A × sign of log π + H ("high": log π + H > 0); A = 0 → "A=0"."""
    out = []
    for a, h in zip(advantages.flatten().tolist(), (log_prob + entropy).flatten().tolist(), strict=True):
        if a == 0:
            out.append("A=0")
        else:
            out.append(f"A{'>' if a > 0 else '<'}0,{'high' if h > 0 else 'low'}")
    return out
