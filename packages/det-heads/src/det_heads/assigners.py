"""Matching of candidate boxes (anchors, proposals) to ground-truth boxes by IoU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

import det_ops


@dataclass
class Assignment:
    """Which ground truth each candidate box is matched to.

    Attributes:
        num_gts: number of ground-truth boxes G.
        gt_inds: int64 Tensor[N]: 0 negative, -1 ignored, k > 0 matched to gt k - 1.
        max_overlaps: Tensor[N] IoU of each box with its best ground truth (0 without any).
        labels: int64 Tensor[N] class of the matched gt, or num_classes (background) for
            the others; None when no gt labels were given.
    """

    num_gts: int
    gt_inds: Tensor
    max_overlaps: Tensor
    labels: Tensor | None = None

    def add_gt(self, gt_labels: Tensor | None, gt_valid: Tensor | None = None) -> Assignment:
        """The assignment with the gt boxes prepended as candidates matched to themselves;
        gt_valid (bool Tensor[G], or None for all real): padding gts are prepended ignored
        (-1), so that they are never sampled."""
        device = self.gt_inds.device
        self_inds = torch.arange(1, self.num_gts + 1, dtype=torch.int64, device=device)
        if gt_valid is not None:
            self_inds = torch.where(gt_valid.to(device), self_inds, -1)
        labels = None
        if self.labels is not None and gt_labels is not None:
            labels = torch.cat([gt_labels.to(self.labels), self.labels])
        return Assignment(
            self.num_gts,
            torch.cat([self_inds, self.gt_inds]),
            torch.cat([self.max_overlaps.new_ones(self.num_gts), self.max_overlaps]),
            labels,
        )


class MaxIoUAssigner:
    """Assigns each box to the ground truth it overlaps most, by IoU thresholds.

    Args:
        pos_iou_thr: boxes with max IoU >= this are positive.
        neg_iou_thr: boxes with max IoU in [0, this) are negative; or a (lo, hi) pair:
            negative when lo <= max IoU < hi.
        min_pos_iou: a gt's best box is positive (a low-quality match) if their IoU is at
            least this (and above 0).
        gt_max_assign_all: give a gt every box that ties for its best IoU, not only the first.
        ignore_iof_thr: boxes covered by an ignore (crowd) box by more than this fraction of
            their own area are ignored; < 0 disables.
        num_classes: C, the label of unmatched boxes in Assignment.labels.
        offset: 0 (widths x2 - x1) or 1 (x2 - x1 + 1, the 2019 bbox_overlaps) in the IoU.

    Zoo settings (2019): RPN 0.7 / 0.3 / 0.3, R-CNN 0.5 / 0.5 / 0.5, RetinaNet 0.5 / 0.4 / 0,
    SSD 0.5 / 0.5 / 0 with gt_max_assign_all False; Cascade stages 0.5, 0.6, 0.7 for all three.
    """

    def __init__(
        self,
        pos_iou_thr: float,
        neg_iou_thr: float | tuple[float, float],
        min_pos_iou: float = 0.0,
        *,
        gt_max_assign_all: bool = True,
        ignore_iof_thr: float = -1.0,
        offset: int = 0,
    ) -> None:
        if isinstance(offset, bool) or offset not in (0, 1):
            raise ValueError(f"MaxIoUAssigner: offset must be 0 or 1, got {offset!r}")
        self.offset = int(offset)
        if isinstance(neg_iou_thr, (tuple, list)):
            if len(neg_iou_thr) != 2 or neg_iou_thr[0] > neg_iou_thr[1]:
                raise ValueError(
                    f"MaxIoUAssigner: neg_iou_thr must be a float or (lo, hi), got {neg_iou_thr}"
                )
            neg_iou_thr = (float(neg_iou_thr[0]), float(neg_iou_thr[1]))
        self.pos_iou_thr = float(pos_iou_thr)
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = float(min_pos_iou)
        self.gt_max_assign_all = gt_max_assign_all
        self.ignore_iof_thr = float(ignore_iof_thr)

    def __call__(
        self,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor | None = None,
        ignore_boxes: Tensor | None = None,
        num_classes: int | None = None,
        valid: Tensor | None = None,
        gt_valid: Tensor | None = None,
    ) -> Assignment:
        """Matches boxes to gt_boxes.

        Args:
            boxes: Tensor[N, 4] candidates (x1, y1, x2, y2), pixels.
            gt_boxes: Tensor[G, 4] ground truth, same convention; G may be 0.
            gt_labels: int64 Tensor[G] in 0..C-1, or None.
            ignore_boxes: Tensor[M, 4] crowd regions, or None.
            num_classes: C, needed with gt_labels (background label).
            valid: bool Tensor[N], the boxes that may be matched (anchors inside the image),
                or None for all; the others are ignored (-1) and take no part in the
                low-quality matches, as if they were not candidates.
            gt_valid: bool Tensor[G], the real gts of ground truth padded to a fixed count
                (a captured step), or None for all; a padding gt matches nothing.

        Returns:
            An Assignment of the N boxes (max_overlaps -1 where invalid or ignored).

        Every step is an elementwise select or a reduction: no host synchronisation.

        Steps (the order matters: later steps overwrite earlier ones):
            1. IoU of every gt with every box, Tensor[G, N].
            2. Invalid boxes, and boxes covered by an ignore box (IoF > ignore_iof_thr), get
               IoU -1 with every gt, so that they can be neither positive nor negative.
            3. Every box starts ignored (-1); boxes whose best IoU is in the negative range
               become negative (0).
            4. Boxes whose best IoU >= pos_iou_thr are matched to that gt.
            5. Low-quality matches: each gt whose best IoU >= min_pos_iou (and > 0) takes its
               best box(es), in gt order, even if below pos_iou_thr.
        """
        n, g = boxes.shape[0], gt_boxes.shape[0]
        device = boxes.device
        gt_inds = torch.full((n,), -1, dtype=torch.int64, device=device)
        if g == 0 or n == 0:
            gt_inds = gt_inds.zero_() if valid is None else torch.where(valid.to(device), 0, -1)
            return self._with_labels(
                Assignment(g, gt_inds, boxes.new_zeros(n)), gt_labels, num_classes
            )
        # Step 1.
        overlaps = det_ops.bbox_overlaps(gt_boxes.to(boxes.dtype), boxes, offset=self.offset)
        if gt_valid is not None:  # as assign_batch: IoU 0 changes no box's best IoU
            gt_valid = gt_valid.to(device)
            overlaps = overlaps.masked_fill(~gt_valid[:, None], 0.0)
        # Step 2.
        excluded = None if valid is None else ~valid.to(device)
        if self.ignore_iof_thr > 0 and ignore_boxes is not None and ignore_boxes.numel():
            covered = self._covered(boxes, ignore_boxes)
            excluded = covered if excluded is None else excluded | covered
        gt_inds, max_overlaps = self.match(
            overlaps[None],
            None if excluded is None else excluded[None],
            None if gt_valid is None else gt_valid[None],
        )
        gt_inds, max_overlaps = gt_inds[0], max_overlaps[0]
        return self._with_labels(Assignment(g, gt_inds, max_overlaps), gt_labels, num_classes)

    def _covered(self, boxes: Tensor, ignore_boxes: Tensor) -> Tensor:
        """bool Tensor[N]: boxes covered by an ignore box by more than ignore_iof_thr."""
        iof = det_ops.bbox_overlaps(
            boxes, ignore_boxes.to(boxes.dtype), mode="iof", offset=self.offset
        )
        return iof.max(dim=1).values > self.ignore_iof_thr

    def assign_batch(
        self,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_valid: Tensor,
        valid: Tensor,
        ignore_boxes: Sequence[Tensor | None] = (),
    ) -> tuple[Tensor, Tensor]:
        """The boxes shared by a batch (anchors) matched to each image's ground truth.

        Args:
            boxes: Tensor[N, 4] candidates of every image.
            gt_boxes: Tensor[B, G, 4] each image's ground truth, padded to G.
            gt_valid: bool Tensor[B, G], the real gts.
            valid: bool Tensor[B, N], the candidates each image may match.
            ignore_boxes: per image Tensor[M, 4] crowd regions or None (or empty).

        Returns:
            (gt_inds int64 Tensor[B, N], max_overlaps Tensor[B, N]) as each image's
            Assignment: the same matches as __call__ image by image.
        """
        b, g = gt_boxes.shape[:2]
        if g == 0 or boxes.shape[0] == 0:
            gt_inds = torch.where(valid, 0, -1)
            return gt_inds, boxes.new_zeros(gt_inds.shape)
        overlaps = det_ops.bbox_overlaps(
            gt_boxes.reshape(-1, 4).to(boxes.dtype), boxes, offset=self.offset
        ).reshape(b, g, -1)
        # A padding gt overlaps nothing: IoU 0 changes no box's best IoU (IoUs are >= 0).
        overlaps = overlaps.masked_fill(~gt_valid[..., None], 0.0)
        excluded = ~valid
        if self.ignore_iof_thr > 0:
            for i, ignore in enumerate(ignore_boxes):
                if ignore is not None and ignore.numel():
                    excluded[i] |= self._covered(boxes, ignore)
        return self.match(overlaps, excluded, gt_valid)

    def match(
        self, overlaps: Tensor, excluded: Tensor | None, gt_valid: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Steps 2 to 5 of __call__ on a batch: overlaps Tensor[B, G, N] (G >= 1), excluded
        bool Tensor[B, N] or None, gt_valid bool Tensor[B, G] or None (all real) ->
        (gt_inds int64 Tensor[B, N], max_overlaps Tensor[B, N])."""
        b, g, n = overlaps.shape
        device = overlaps.device
        # Step 2.
        if excluded is not None:
            overlaps = overlaps.masked_fill(excluded[:, None, :], -1.0)
        # Step 3.
        gt_inds = torch.full((b, n), -1, dtype=torch.int64, device=device)
        max_overlaps, argmax = overlaps.max(dim=1)
        if isinstance(self.neg_iou_thr, tuple):
            lo, hi = self.neg_iou_thr
            negative = (max_overlaps >= lo) & (max_overlaps < hi)
        else:
            negative = (max_overlaps >= 0) & (max_overlaps < self.neg_iou_thr)
        gt_inds = gt_inds.masked_fill(negative, 0)
        # Step 4.
        gt_inds = torch.where(max_overlaps >= self.pos_iou_thr, argmax + 1, gt_inds)
        # Step 5, for all gts at once: where several gts take the same box, the last in gt
        # order wins (as a loop over the gts would leave it), hence the max of their numbers.
        gt_max, gt_argmax = overlaps.max(dim=2)
        eligible = (gt_max >= self.min_pos_iou) & (gt_max > 0)
        if gt_valid is not None:
            eligible = eligible & gt_valid
        numbers = torch.arange(1, g + 1, device=device)
        if self.gt_max_assign_all:
            takes = (overlaps == gt_max[..., None]) & eligible[..., None]  # [B, G, N]
            winner = (takes * numbers[:, None]).max(dim=1).values
        else:  # an ineligible gt scatters 0, which changes no maximum
            winner = torch.zeros_like(gt_inds).scatter_reduce(
                1, gt_argmax, numbers * eligible, "amax"
            )
        gt_inds = torch.where(winner > 0, winner, gt_inds)
        return gt_inds, max_overlaps

    @staticmethod
    def _with_labels(
        assignment: Assignment, gt_labels: Tensor | None, num_classes: int | None
    ) -> Assignment:
        if gt_labels is None:
            return assignment
        if num_classes is None:
            raise ValueError("MaxIoUAssigner: num_classes is needed with gt_labels")
        gt_inds = assignment.gt_inds
        if assignment.num_gts == 0:
            assignment.labels = torch.full_like(gt_inds, num_classes)
            return assignment
        matched = gt_labels.to(gt_inds)[(gt_inds - 1).clamp(min=0)]
        assignment.labels = torch.where(gt_inds > 0, matched, num_classes)
        return assignment
