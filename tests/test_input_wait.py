"""`input_wait`: the time a training loop spends blocked on its input, and the warning above 20% of the step time."""

from __future__ import annotations

import time

from jaxdl.data.pipeline import EpochBatches, input_wait_warning


def test_epoch_batches_count_the_time_spent_waiting_for_the_next_batch():
    def slow():
        for i in range(4):
            time.sleep(0.05)
            yield i

    batches = EpochBatches(slow(), 0, 4)
    start = time.perf_counter()
    for _ in batches:
        time.sleep(0.02)  # the consumer's own work is not waiting
    total = time.perf_counter() - start
    assert 0.2 <= batches.waited < total - 0.07 and batches.step == 4


def test_the_warning_names_the_three_remedies_above_a_fifth_of_the_step_time():
    assert input_wait_warning(0.2) is None and input_wait_warning(0.05) is None
    warning = input_wait_warning(0.63)
    assert "63%" in warning
    for remedy in ("data.workers=N", "jaxdl-data pack", "data=packed", "data.decoder=dali"):
        assert remedy in warning
