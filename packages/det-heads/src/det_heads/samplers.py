"""Choice of the positive and negative boxes a head is trained on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from det_heads.assigners import Assignment

# (candidate boxes Tensor[N, 4], their labels int64[N], background = C) -> loss Tensor[N]
Hardness = Callable[[Tensor, Tensor], Tensor]


@dataclass
class SamplingResult:
    """The sampled boxes of one image.

    Attributes:
        boxes: Tensor[N, 4] all candidates (gt boxes first when they were added).
        assignment: the candidates' Assignment.
        gt_boxes: Tensor[G, 4] the image's ground truth.
        pos_inds: int64 Tensor[P] indices into boxes of the positives.
        neg_inds: int64 Tensor[Q] indices into boxes of the negatives.
        num_added_gt: how many gt boxes were prepended to boxes.
    """

    boxes: Tensor
    assignment: Assignment
    gt_boxes: Tensor
    pos_inds: Tensor
    neg_inds: Tensor
    num_added_gt: int = 0

    @property
    def pos_boxes(self) -> Tensor:
        return self.boxes[self.pos_inds]

    @property
    def neg_boxes(self) -> Tensor:
        return self.boxes[self.neg_inds]

    @property
    def pos_assigned_gt_inds(self) -> Tensor:
        """int64 Tensor[P]: index into gt_boxes of each positive."""
        return self.assignment.gt_inds[self.pos_inds] - 1

    @property
    def pos_gt_boxes(self) -> Tensor:
        return self.gt_boxes[self.pos_assigned_gt_inds].reshape(-1, 4)

    @property
    def pos_labels(self) -> Tensor:
        if self.assignment.labels is None:
            raise ValueError("SamplingResult: the assignment carries no labels")
        return self.assignment.labels[self.pos_inds]

    @property
    def pos_is_gt(self) -> Tensor:
        """bool Tensor[P]: whether each positive is one of the added gt boxes."""
        return self.pos_inds < self.num_added_gt


def _candidates(
    assignment: Assignment,
    boxes: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor | None,
    add_gt_as_proposals: bool,
) -> tuple[Assignment, Tensor, int]:
    if add_gt_as_proposals and gt_boxes.shape[0] > 0:
        boxes = torch.cat([gt_boxes.to(boxes.dtype), boxes])
        return assignment.add_gt(gt_labels), boxes, gt_boxes.shape[0]
    return assignment, boxes, 0


def _check_fraction(name: str, num: int, pos_fraction: float) -> None:
    if num < 1:
        raise ValueError(f"{name}: num must be >= 1, got {num}")
    if not 0 <= pos_fraction <= 1:
        raise ValueError(f"{name}: pos_fraction must be in [0, 1], got {pos_fraction}")


class RandomSampler:
    """Up to num boxes, at most num * pos_fraction of them positive, chosen at random.

    Negatives fill the rest, at most neg_pos_ub times the positives (at least one) when
    neg_pos_ub >= 0. Zoo settings (2019): RPN 256 @ 0.5 without gt, R-CNN 512 @ 0.25 with gt.

    Args:
        num: boxes per image.
        pos_fraction: largest share of positives.
        neg_pos_ub: upper bound of negatives per positive; < 0: none.
        add_gt_as_proposals: make the gt boxes candidates (R-CNN stages).
        generator: random generator (CPU), for reproducible draws.
    """

    def __init__(
        self,
        num: int,
        pos_fraction: float,
        neg_pos_ub: float = -1,
        add_gt_as_proposals: bool = True,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        _check_fraction(type(self).__name__, num, pos_fraction)
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals
        self.generator = generator

    def __call__(
        self,
        assignment: Assignment,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor | None = None,
        hardness: Hardness | None = None,
    ) -> SamplingResult:
        """Samples positives and negatives.

        Args:
            assignment: Assignment of boxes.
            boxes: Tensor[N, 4] candidates (x1, y1, x2, y2), pixels.
            gt_boxes: Tensor[G, 4] ground truth.
            gt_labels: int64 Tensor[G], to label the added gt boxes.
            hardness: unused (OHEMSampler's argument).

        Returns:
            The SamplingResult.
        """
        assignment, boxes, added = _candidates(
            assignment, boxes, gt_boxes, gt_labels, self.add_gt_as_proposals
        )
        pos = (assignment.gt_inds > 0).nonzero().flatten()
        neg = (assignment.gt_inds == 0).nonzero().flatten()
        num_pos = min(int(self.num * self.pos_fraction), pos.numel())
        pos = self._choose(pos, num_pos)
        num_neg = self.num - pos.numel()
        if self.neg_pos_ub >= 0:
            num_neg = min(num_neg, int(self.neg_pos_ub * max(1, pos.numel())))
        neg = self._choose(neg, min(num_neg, neg.numel()))
        return SamplingResult(boxes, assignment, gt_boxes, pos, neg, added)

    def _choose(self, inds: Tensor, k: int) -> Tensor:
        if inds.numel() <= k:
            return inds
        order = torch.randperm(inds.numel(), generator=self.generator)[:k]
        return inds[order.to(inds.device)]


class PseudoSampler:
    """Takes every positive and every negative (dense heads whose loss weighs them itself)."""

    def __call__(
        self,
        assignment: Assignment,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor | None = None,
        hardness: Hardness | None = None,
    ) -> SamplingResult:
        """Args and Returns as RandomSampler.__call__."""
        pos = (assignment.gt_inds > 0).nonzero().flatten()
        neg = (assignment.gt_inds == 0).nonzero().flatten()
        return SamplingResult(boxes, assignment, gt_boxes, pos, neg, 0)


class OHEMSampler(RandomSampler):
    """Online hard example mining (Shrivastava et al., 2016): the highest-loss boxes.

    Like RandomSampler, but positives and negatives are the ones with the largest loss, as
    given by a hardness function evaluated on every candidate without gradient.
    """

    def __call__(
        self,
        assignment: Assignment,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor | None = None,
        hardness: Hardness | None = None,
    ) -> SamplingResult:
        """Args and Returns as RandomSampler.__call__; hardness is required.

        hardness(boxes Tensor[N, 4], labels int64[N]) -> Tensor[N] per-box loss, where
        labels are the candidates' assigned classes (background = C).
        """
        if hardness is None:
            raise ValueError("OHEMSampler: hardness (boxes, labels) -> loss[N] is required")
        assignment, boxes, added = _candidates(
            assignment, boxes, gt_boxes, gt_labels, self.add_gt_as_proposals
        )
        if assignment.labels is None:
            raise ValueError("OHEMSampler: the assignment needs labels (pass gt_labels)")
        with torch.no_grad():
            loss = hardness(boxes, assignment.labels)
        pos = (assignment.gt_inds > 0).nonzero().flatten()
        neg = (assignment.gt_inds == 0).nonzero().flatten()
        pos = _hardest(pos, loss, min(int(self.num * self.pos_fraction), pos.numel()))
        num_neg = self.num - pos.numel()
        if self.neg_pos_ub >= 0:
            num_neg = min(num_neg, int(self.neg_pos_ub * max(1, pos.numel())))
        neg = _hardest(neg, loss, min(num_neg, neg.numel()))
        return SamplingResult(boxes, assignment, gt_boxes, pos, neg, added)


def _hardest(inds: Tensor, loss: Tensor, k: int) -> Tensor:
    if inds.numel() <= k:
        return inds
    return inds[loss[inds].topk(k).indices]
