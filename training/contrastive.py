"""A margin-based contrastive term on the pooled embeddings, next to cross-entropy.

Zhou, Liu and Chen, "Contrastive Out-of-Distribution Detection for Pretrained Transformers"
(EMNLP 2021): pulling each label's embeddings together and pushing other labels' ones past
the batch's widest same-label distance makes the classes compact, which is what a
Mahalanobis novelty score reads (issue 14: tickets unlike the training data). The margin is
the largest same-label squared distance in the batch, so the term has no scale to tune.
"""

from __future__ import annotations

import torch


def margin_contrastive(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The batch's mean same-label squared distance plus the mean shortfall of other-label
    pairs below the margin (0 when the batch has no same-label pair)."""
    x = embeddings.float()
    distances = torch.cdist(x, x).pow(2)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & off_diagonal
    negative = ~same
    if not positive.any():
        return distances.new_zeros(())
    margin = distances[positive].max().detach()
    pulled = distances[positive].mean()
    pushed = torch.relu(margin - distances[negative]).mean() if negative.any() else 0.0
    return pulled + pushed
