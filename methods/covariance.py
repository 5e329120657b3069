"""The token covariance Clip-Cov and KL-Cov select on (Cui et al. 2025, arXiv 2505.22617, Eq. 11).

Cov_t = (A_t − Ā) · (log π_t − mean log π)       means over the valid tokens of the batch, no gradient
"""

from __future__ import annotations

import torch

from steerbench.methods.aggregation import masked_mean


def token_covariance(advantages: torch.Tensor, log_prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logp = log_prob.detach()
        return (advantages - masked_mean(advantages, mask)) * (logp - masked_mean(logp, mask))
