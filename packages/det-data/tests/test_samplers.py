from collections import Counter

import numpy as np
import pytest

from det_data.samplers import DistributedGroupSampler, GroupSampler


class FlagsOnly:
    def __init__(self, flags):
        self.aspect_ratio_flags = np.asarray(flags, dtype=np.uint8)

    def __len__(self):
        return len(self.aspect_ratio_flags)


# 13 landscape, 6 portrait, interleaved
FLAGS = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1]


def _chunks(indices, size):
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def test_group_sampler_batches_never_mix_orientations():
    ds = FlagsOnly(FLAGS)
    sampler = GroupSampler(ds, samples_per_gpu=4, seed=3)
    indices = list(sampler)
    # landscape 13 -> 16, portrait 6 -> 8
    assert len(indices) == len(sampler) == 24
    assert set(indices) == set(range(len(FLAGS)))
    for chunk in _chunks(indices, 4):
        assert len({FLAGS[i] for i in chunk}) == 1
    counts = Counter(indices)
    assert sum(counts.values()) - len(counts) == 5  # exactly the padding repeats
    sampler.set_epoch(1)
    assert list(sampler) != indices
    sampler.set_epoch(0)
    assert list(sampler) == indices


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_distributed_group_sampler_shares(num_replicas):
    ds = FlagsOnly(FLAGS)
    make = lambda rank, seed=0: DistributedGroupSampler(  # noqa: E731
        ds, samples_per_gpu=2, num_replicas=num_replicas, rank=rank, seed=seed
    )
    shares = [list(make(r)) for r in range(num_replicas)]
    lengths = {len(s) for s in shares}
    assert lengths == {len(make(0))}
    step = 2 * num_replicas
    expected_total = -(-13 // step) * step + -(-6 // step) * step
    assert sum(len(s) for s in shares) == expected_total
    # complete coverage; repeats only from padding
    everything = [i for s in shares for i in s]
    assert set(everything) == set(range(len(FLAGS)))
    assert len(everything) - len(FLAGS) == expected_total - len(FLAGS)
    for share in shares:
        for chunk in _chunks(share, 2):
            assert len({FLAGS[i] for i in chunk}) == 1
    # same across ranks for a seed and epoch: a rebuilt sampler gives the same share
    assert shares == [list(make(r)) for r in range(num_replicas)]
    moved = make(0)
    moved.set_epoch(5)
    assert list(moved) != shares[0]
    assert list(make(0, seed=1)) != shares[0]


def test_distributed_group_sampler_disjoint_without_padding():
    flags = [0] * 8 + [1] * 12
    shares = [
        list(DistributedGroupSampler(FlagsOnly(flags), 2, num_replicas=2, rank=r, seed=7))
        for r in range(2)
    ]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(20))


def test_distributed_group_sampler_checks_rank():
    with pytest.raises(ValueError, match=r"rank 2 not in \[0, 2\)"):
        DistributedGroupSampler(FlagsOnly(FLAGS), 2, num_replicas=2, rank=2)
