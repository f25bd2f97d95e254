import numpy as np
import pytest

from boundaries.data.sampling import ImbalanceSampler, epoch_plan

FLAGS = np.r_[np.ones(10, bool), np.zeros(90, bool)]


def share(plan):
    return FLAGS[plan].mean()


def test_none_uses_every_excerpt_once():
    plan = epoch_plan(FLAGS, "none", 0.5, 8, np.random.default_rng(0))
    assert sorted(plan) == list(range(100))


@pytest.mark.parametrize("strategy", ["oversample", "undersample"])
@pytest.mark.parametrize("target", [0.3, 0.5])
def test_resampling_reaches_the_positive_share(strategy, target):
    plan = epoch_plan(FLAGS, strategy, target, 8, np.random.default_rng(0))
    assert share(plan) == pytest.approx(target, abs=0.02)


def test_oversample_keeps_every_negative_once():
    plan = epoch_plan(FLAGS, "oversample", 0.5, 8, np.random.default_rng(0))
    negatives = plan[~FLAGS[plan]]
    assert sorted(negatives) == list(range(10, 100))


def test_undersample_keeps_every_positive_once():
    plan = epoch_plan(FLAGS, "undersample", 0.5, 8, np.random.default_rng(0))
    assert sorted(plan[FLAGS[plan]]) == list(range(10))
    assert len(set(plan)) == len(plan)


def test_batch_share_fixes_every_batch():
    plan = epoch_plan(FLAGS, "batch_share", 0.25, 8, np.random.default_rng(0))
    batches = plan.reshape(-1, 8)
    assert all(FLAGS[b].sum() == 2 for b in batches)


def test_sampler_is_seeded_per_epoch():
    a = ImbalanceSampler(FLAGS, "oversample", seed=1)
    b = ImbalanceSampler(FLAGS, "oversample", seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_ranks_split_the_same_plan_by_batches():
    full = ImbalanceSampler(FLAGS, "batch_share", 0.25, batch_size=8, seed=0)
    ranks = [ImbalanceSampler(FLAGS, "batch_share", 0.25, batch_size=8, seed=0, rank=r,
                              world_size=2) for r in range(2)]
    plans = [list(r) for r in ranks]
    assert len(plans[0]) == len(plans[1])
    for plan in plans:
        assert all(FLAGS[np.array(plan[i:i + 8])].sum() == 2 for i in range(0, len(plan), 8))
    # Together the ranks cover the one-process plan (plus at most one batch repeated to even out
    # the step count).
    from collections import Counter

    missing = Counter(full) - Counter(plans[0] + plans[1])
    assert not missing
    assert len(plans[0]) + len(plans[1]) - len(list(full)) <= 8


def test_nothing_to_balance_falls_back_to_once_each():
    plan = epoch_plan(np.ones(5, bool), "oversample", 0.5, 2, np.random.default_rng(0))
    assert sorted(plan) == list(range(5))
