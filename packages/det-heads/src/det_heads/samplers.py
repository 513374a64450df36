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
    """The sampled boxes of one image, in a fixed number of slots.

    The number of slots K is known from the shapes alone (RandomSampler: min(num, N)), so
    that the heads computing on them never wait for the device to tell them how many boxes
    were sampled. Slots hold the positives first, then the negatives, each in increasing
    candidate order; the rest are padding, which points at a real candidate (its numbers
    stay finite) and which every loss weighs 0.

    Attributes:
        boxes: Tensor[N, 4] all candidates (gt boxes first when they were added).
        assignment: the candidates' Assignment.
        gt_boxes: Tensor[G, 4] the image's ground truth.
        inds: int64 Tensor[K] the candidate of each slot.
        is_pos: bool Tensor[K] slots holding a sampled positive.
        is_neg: bool Tensor[K] slots holding a sampled negative.
        num_added_gt: how many gt boxes were prepended to boxes.
        pos_capacity: slots at or after this index never hold a positive (a mask head
            computes on the first pos_capacity slots); None: K.
    """

    boxes: Tensor
    assignment: Assignment
    gt_boxes: Tensor
    inds: Tensor
    is_pos: Tensor
    is_neg: Tensor
    num_added_gt: int = 0
    pos_capacity: int | None = None

    @classmethod
    def from_indices(
        cls,
        boxes: Tensor,
        assignment: Assignment,
        gt_boxes: Tensor,
        pos_inds: Tensor,
        neg_inds: Tensor,
        num_added_gt: int = 0,
    ) -> SamplingResult:
        """A result whose slots are exactly the given positives then negatives."""
        p, q = pos_inds.shape[0], neg_inds.shape[0]
        slot = torch.arange(p + q, device=boxes.device)
        return cls(
            boxes,
            assignment,
            gt_boxes,
            torch.cat([pos_inds, neg_inds]).to(boxes.device, torch.int64),
            slot < p,
            slot >= p,
            num_added_gt,
            p,
        )

    @property
    def num_slots(self) -> int:
        return self.inds.shape[0]

    @property
    def valid(self) -> Tensor:
        """bool Tensor[K]: the slots holding a sampled box."""
        return self.is_pos | self.is_neg

    @property
    def num_pos(self) -> Tensor:
        """int64 scalar Tensor, on the boxes' device."""
        return self.is_pos.sum()

    @property
    def num_neg(self) -> Tensor:
        """int64 scalar Tensor, on the boxes' device."""
        return self.is_neg.sum()

    @property
    def slot_boxes(self) -> Tensor:
        """Tensor[K, 4]: the box of each slot."""
        return self.boxes[self.inds]

    @property
    def gt_inds(self) -> Tensor:
        """int64 Tensor[K]: index into gt_boxes of each slot's gt (0 where not positive)."""
        return (self.assignment.gt_inds[self.inds] - 1).clamp(min=0)

    @property
    def slot_gt_boxes(self) -> Tensor:
        """Tensor[K, 4]: the gt box of each slot (meaningful at positives; zeros without gt)."""
        if self.gt_boxes.shape[0] == 0:
            return self.boxes.new_zeros(self.num_slots, 4)
        return self.gt_boxes.to(self.boxes)[self.gt_inds]

    def labels(self, background: int) -> Tensor:
        """int64 Tensor[K]: each positive slot's class, background elsewhere."""
        if self.assignment.labels is None:
            raise ValueError("SamplingResult: the assignment carries no labels")
        return torch.where(self.is_pos, self.assignment.labels[self.inds], background)

    @property
    def is_gt(self) -> Tensor:
        """bool Tensor[K]: positive slots holding one of the added gt boxes."""
        return self.is_pos & (self.inds < self.num_added_gt)

    def candidate_masks(self) -> tuple[Tensor, Tensor]:
        """(sampled positive, sampled negative) bool Tensor[N] over the candidates."""
        return slot_masks(self.boxes.shape[0], self.inds, self.is_pos, self.is_neg)

    # The sampled boxes as variable-size tensors: each reads the slot masks on the host
    # (a synchronisation), for inspection and tests; the heads use the slots.

    @property
    def pos_inds(self) -> Tensor:
        """int64 Tensor[P]: indices into boxes of the positives."""
        return self.inds[self.is_pos]

    @property
    def neg_inds(self) -> Tensor:
        """int64 Tensor[Q]: indices into boxes of the negatives."""
        return self.inds[self.is_neg]

    @property
    def pos_boxes(self) -> Tensor:
        return self.boxes[self.pos_inds]

    @property
    def neg_boxes(self) -> Tensor:
        return self.boxes[self.neg_inds]

    @property
    def pos_assigned_gt_inds(self) -> Tensor:
        """int64 Tensor[P]: index into gt_boxes of each positive."""
        return self.gt_inds[self.is_pos]

    @property
    def pos_gt_boxes(self) -> Tensor:
        return self.slot_gt_boxes[self.is_pos].reshape(-1, 4)

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
    gt_valid: Tensor | None = None,
) -> tuple[Assignment, Tensor, int]:
    if add_gt_as_proposals and gt_boxes.shape[0] > 0:
        boxes = torch.cat([gt_boxes.to(boxes.dtype), boxes])
        return assignment.add_gt(gt_labels, gt_valid), boxes, gt_boxes.shape[0]
    return assignment, boxes, 0


def _check_fraction(name: str, num: int, pos_fraction: float) -> None:
    if num < 1:
        raise ValueError(f"{name}: num must be >= 1, got {num}")
    if not 0 <= pos_fraction <= 1:
        raise ValueError(f"{name}: pos_fraction must be in [0, 1], got {pos_fraction}")


def _fixed_sample(
    assignment: Assignment,
    boxes: Tensor,
    gt_boxes: Tensor,
    added: int,
    keys: Tensor,
    num: int,
    pos_fraction: float,
    neg_pos_ub: float,
) -> SamplingResult:
    """The positives and negatives of largest key, in min(num, N) slots.

    Steps (device tensors throughout; the slot counts come from the shapes):
        1. P' = min(int(num * pos_fraction), P) positives; Q' = min(num - P', Q) negatives,
           and with neg_pos_ub >= 0 at most int(neg_pos_ub * max(1, P')).
        2. The P' positives and Q' negatives of largest key: top-k over the keys of each
           kind (the others' keys -inf) with k the slots each may take.
        3. Each kind's chosen candidates in increasing index order, positives in the first
           slots, negatives after them, padding last.
    """
    inds, is_pos, is_neg, pos_slots = choose_slots(
        assignment.gt_inds[None], keys[None], num, pos_fraction, neg_pos_ub
    )
    inds, is_pos, is_neg = inds[0], is_pos[0], is_neg[0]
    return SamplingResult(boxes, assignment, gt_boxes, inds, is_pos, is_neg, added, pos_slots)


def choose_slots(
    gt_inds: Tensor, keys: Tensor, num: int, pos_fraction: float, neg_pos_ub: float
) -> tuple[Tensor, Tensor, Tensor, int]:
    """_fixed_sample's slots for a batch: gt_inds and keys Tensor[B, N] -> (inds int64
    Tensor[B, K], is_pos, is_neg bool Tensor[B, K], pos_slots) with K = min(num, N)."""
    n, device = gt_inds.shape[1], gt_inds.device
    max_pos = int(num * pos_fraction)
    slots, pos_slots = min(num, n), min(max_pos, num, n)
    positive, negative = gt_inds > 0, gt_inds == 0
    # Step 1.
    num_pos = positive.sum(dim=1, keepdim=True).clamp(max=max_pos)
    num_neg = num - num_pos
    if neg_pos_ub >= 0:
        bound = (num_pos.clamp(min=1).double() * float(neg_pos_ub)).floor().long()
        num_neg = torch.minimum(num_neg, bound)
    num_neg = torch.minimum(num_neg, negative.sum(dim=1, keepdim=True))
    # Step 2.
    low = torch.finfo(keys.dtype).min
    pos_order = keys.masked_fill(~positive, low).topk(pos_slots, dim=1).indices
    neg_order = keys.masked_fill(~negative, low).topk(slots, dim=1).indices
    # Step 3: the chosen in index order, then n (sorted last) for the rest.
    pos_sel = torch.where(torch.arange(pos_slots, device=device) < num_pos, pos_order, n)
    neg_sel = torch.where(torch.arange(slots, device=device) < num_neg, neg_order, n)
    pos_sel, neg_sel = pos_sel.sort(dim=1).values, neg_sel.sort(dim=1).values
    slot = torch.arange(slots, device=device)
    is_pos = slot < num_pos
    is_neg = ~is_pos & (slot < num_pos + num_neg)
    from_neg = neg_sel.gather(1, (slot - num_pos).clamp(min=0))
    if pos_slots:
        from_pos = pos_sel.gather(1, slot.clamp(max=pos_slots - 1).expand_as(from_neg))
        inds = torch.where(is_pos, from_pos, from_neg)
    else:
        inds = from_neg
    inds = torch.where(is_pos | is_neg, inds, 0)  # padding: any real candidate
    return inds, is_pos, is_neg, pos_slots


def slot_masks(n: int, inds: Tensor, is_pos: Tensor, is_neg: Tensor) -> tuple[Tensor, Tensor]:
    """(sampled positive, sampled negative) bool Tensor[..., N] over N candidates, from
    slots inds, is_pos, is_neg Tensor[..., K]."""
    shape = (*inds.shape[:-1], n)
    pos = torch.zeros(shape, dtype=torch.int32, device=inds.device)
    neg = torch.zeros_like(pos)
    pos.scatter_add_(-1, inds, is_pos.int())
    neg.scatter_add_(-1, inds, is_neg.int())
    return pos > 0, neg > 0


class RandomSampler:
    """Up to num boxes, at most num * pos_fraction of them positive, chosen at random.

    Negatives fill the rest, at most neg_pos_ub times the positives (at least one) when
    neg_pos_ub >= 0. Zoo settings (2019): RPN 256 @ 0.5 without gt, R-CNN 512 @ 0.25 with gt.

    The draw is a top-k of uniform random keys made on the boxes' device, into min(num, N)
    slots (SamplingResult): no host synchronisation. Fewer candidates of a kind than it may
    take are all taken.

    Args:
        num: boxes per image.
        pos_fraction: largest share of positives.
        neg_pos_ub: upper bound of negatives per positive; < 0: none.
        add_gt_as_proposals: make the gt boxes candidates (R-CNN stages).
        generator: random generator, for reproducible draws; the keys are drawn on its
            device (a CPU generator with boxes on a GPU costs a copy of N keys).
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
        *,
        gt_valid: Tensor | None = None,
    ) -> SamplingResult:
        """Samples positives and negatives.

        Args:
            assignment: Assignment of boxes.
            boxes: Tensor[N, 4] candidates (x1, y1, x2, y2), pixels.
            gt_boxes: Tensor[G, 4] ground truth.
            gt_labels: int64 Tensor[G], to label the added gt boxes.
            hardness: unused (OHEMSampler's argument).
            gt_valid: bool Tensor[G], the real gts of padded ground truth (added padding gts
                are ignored candidates), or None for all.

        Returns:
            The SamplingResult, min(num, N) slots (N counting added gt boxes).
        """
        assignment, boxes, added = _candidates(
            assignment, boxes, gt_boxes, gt_labels, self.add_gt_as_proposals, gt_valid
        )
        keys = self._keys(boxes.shape[0], boxes.device)
        return _fixed_sample(
            assignment, boxes, gt_boxes, added, keys, self.num, self.pos_fraction, self.neg_pos_ub
        )

    def dense_masks(self, gt_inds: Tensor) -> tuple[Tensor, Tensor]:
        """(sampled positive, sampled negative) bool Tensor[B, N] of a batch whose images
        share their N candidates (a dense head's anchors), gt_inds Tensor[B, N] as each
        image's Assignment: the samples of __call__ image by image, drawn in one go."""
        if self.add_gt_as_proposals:
            raise ValueError(
                "anchor_targets: dense heads need a sampler without add_gt_as_proposals"
            )
        keys = self._keys(gt_inds.shape, gt_inds.device)
        inds, is_pos, is_neg, _ = choose_slots(
            gt_inds, keys, self.num, self.pos_fraction, self.neg_pos_ub
        )
        return slot_masks(gt_inds.shape[1], inds, is_pos, is_neg)

    def _keys(self, shape: int | tuple[int, ...], device: torch.device) -> Tensor:
        if self.generator is None:
            return torch.rand(shape, device=device)
        keys = torch.rand(shape, generator=self.generator, device=self.generator.device)
        return keys.to(device)


class PseudoSampler:
    """Takes every positive and every negative (dense heads whose loss weighs them itself).

    Its slots are the candidates themselves, in their order (not positives first).
    """

    def __call__(
        self,
        assignment: Assignment,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor | None = None,
        hardness: Hardness | None = None,
        *,
        gt_valid: Tensor | None = None,
    ) -> SamplingResult:
        """Args and Returns as RandomSampler.__call__; N slots (gt_valid: unused, the
        assignment has matched no padding gt)."""
        gt_inds = assignment.gt_inds
        inds = torch.arange(gt_inds.shape[0], device=gt_inds.device)
        return SamplingResult(boxes, assignment, gt_boxes, inds, gt_inds > 0, gt_inds == 0, 0)

    def dense_masks(self, gt_inds: Tensor) -> tuple[Tensor, Tensor]:
        """Every positive and every negative: bool Tensor[B, N] each (see RandomSampler)."""
        return gt_inds > 0, gt_inds == 0


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
        *,
        gt_valid: Tensor | None = None,
    ) -> SamplingResult:
        """Args and Returns as RandomSampler.__call__; hardness is required.

        hardness(boxes Tensor[N, 4], labels int64[N]) -> Tensor[N] per-box loss, where
        labels are the candidates' assigned classes (background = C).
        """
        if hardness is None:
            raise ValueError("OHEMSampler: hardness (boxes, labels) -> loss[N] is required")
        assignment, boxes, added = _candidates(
            assignment, boxes, gt_boxes, gt_labels, self.add_gt_as_proposals, gt_valid
        )
        if assignment.labels is None:
            raise ValueError("OHEMSampler: the assignment needs labels (pass gt_labels)")
        with torch.no_grad():
            loss = hardness(boxes, assignment.labels)
        return _fixed_sample(
            assignment, boxes, gt_boxes, added, loss, self.num, self.pos_fraction, self.neg_pos_ub
        )
