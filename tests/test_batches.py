"""Tests for srcnn.training.batches: which patches each step and replica gets, and the tf.data pipeline over a patch
file."""

from __future__ import annotations

import numpy as np
import pytest

from srcnn.data.patches import PatchFile, to_model_arrays
from srcnn.training.batches import BatchPlan, replica_dataset

N, S, MARGIN, BATCH = 37, 13, 3, 8


@pytest.fixture(scope="module")
def patch_path(tmp_path_factory):
    """(N, 2, S, S) uint8 with the patch number written into the input plane's corner pixel."""
    array = np.random.default_rng(4).integers(0, 256, (N, 2, S, S), dtype=np.uint8)
    array[:, 0, 0, 0] = np.arange(N)
    path = tmp_path_factory.mktemp("batches") / "p.npy"
    np.save(path, array)
    return path


def epoch_batches(plan: BatchPlan, epoch: int) -> list[list[int]]:
    return [plan.batch(epoch * plan.steps_per_epoch + b).tolist() for b in range(plan.steps_per_epoch)]


def ids_of(inputs: np.ndarray) -> list[int]:
    return [int(round(v * 255)) for v in inputs[:, 0, 0, 0]]


def test_each_epoch_covers_every_patch_once_in_batches():
    plan = BatchPlan(N, BATCH, seed=0)
    assert plan.steps_per_epoch == 5  # ceil(37 / 8)
    for epoch in range(3):
        batches = epoch_batches(plan, epoch)
        assert [len(b) for b in batches] == [8, 8, 8, 8, 5]  # last batch partial
        assert sorted(sum(batches, [])) == list(range(N))
        assert all(b == sorted(b) for b in batches)  # sorted: reads go front to back


def test_shuffle_is_seeded_and_changes_per_epoch():
    a, b, other = BatchPlan(N, BATCH, seed=11), BatchPlan(N, BATCH, seed=11), BatchPlan(N, BATCH, seed=12)
    first = epoch_batches(a, 0)
    assert epoch_batches(b, 0) == first
    assert epoch_batches(other, 0) != first
    second = epoch_batches(a, 1)
    assert second != first  # reshuffled
    assert epoch_batches(b, 1) == second
    assert sum(first, []) != sorted(sum(first, []))  # actually shuffled across batches


def test_batches_are_a_function_of_the_step_alone():
    """What a resumed run relies on: step s gives the same batch whether or not steps before it were taken."""
    walked = BatchPlan(N, BATCH, seed=3)
    sequence = [walked.batch(s).tolist() for s in range(4 * walked.steps_per_epoch)]
    for s in (17, 3, 12, 0, 19):  # out of order, on a fresh plan
        assert BatchPlan(N, BATCH, seed=3).batch(s).tolist() == sequence[s]


def test_without_seed_file_order_every_epoch():
    plan = BatchPlan(N, BATCH, seed=None)
    assert sum(epoch_batches(plan, 0), []) == list(range(N))
    assert epoch_batches(plan, 2) == epoch_batches(plan, 0)


def test_replica_slices_partition_each_batch():
    plan = BatchPlan(N, BATCH, seed=5, replicas=3)
    for step in range(2 * plan.steps_per_epoch):
        pieces = [plan.replica_slice(step, r).tolist() for r in range(3)]
        assert sum(pieces, []) == plan.batch(step).tolist()  # contiguous, in order, nothing lost
        assert max(map(len, pieces)) - min(map(len, pieces)) <= 1 and min(map(len, pieces)) >= 1


def test_last_batch_too_small_for_the_replicas_is_left_out():
    assert BatchPlan(17, 8, seed=0, replicas=1).steps_per_epoch == 3
    assert BatchPlan(17, 8, seed=0, replicas=2).steps_per_epoch == 2  # 1 patch cannot feed 2 replicas
    assert BatchPlan(18, 8, seed=0, replicas=2).steps_per_epoch == 3
    with pytest.raises(ValueError, match="3 replicas"):
        BatchPlan(2, 8, seed=0, replicas=3)


def test_model_arrays_are_float_in_unit_range(patch_path):
    pairs = np.load(patch_path)[:4]
    inputs, labels = to_model_arrays(pairs, MARGIN)
    assert inputs.dtype == labels.dtype == np.float32
    assert inputs.shape == (4, S, S, 1) and labels.shape == (4, S - 2 * MARGIN, S - 2 * MARGIN, 1)
    np.testing.assert_allclose(inputs[..., 0], pairs[:, 0] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(labels[..., 0], pairs[:, 1, MARGIN:-MARGIN, MARGIN:-MARGIN] / 255.0, rtol=0, atol=1e-7)


def test_dataset_yields_the_planned_batches(patch_path):
    patches, whole = PatchFile(patch_path), np.load(patch_path)
    plan = BatchPlan(N, BATCH, seed=9)
    elements = list(replica_dataset(patches, plan, MARGIN, [0], first_step=2).take(2 * plan.steps_per_epoch))
    for i, (x, y) in enumerate(elements):
        planned = plan.batch(2 + i)
        assert ids_of(x.numpy()) == planned.tolist()
        expect_x, expect_y = to_model_arrays(whole[planned], MARGIN)
        np.testing.assert_array_equal(x.numpy(), expect_x)
        np.testing.assert_array_equal(y.numpy(), expect_y)


def test_dataset_of_two_local_replicas_interleaves_their_slices(patch_path):
    patches = PatchFile(patch_path)
    plan = BatchPlan(N, BATCH, seed=9, replicas=4)
    # The second of two workers, each with two replicas: it reads slices 2 and 3 of every batch.
    elements = list(replica_dataset(patches, plan, MARGIN, [2, 3]).take(6))
    for i, (x, _) in enumerate(elements):
        step, j = divmod(i, 2)
        assert ids_of(x.numpy()) == plan.replica_slice(step, 2 + j).tolist()
