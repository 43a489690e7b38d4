"""Transfer learning and feature extraction from a real digits run: copied backbone, new head, frozen layers."""

from __future__ import annotations

import numpy as np
import pytest

from jaxdl.errors import CheckpointError, ConfigError
from jaxdl.apps.features import LayerFeatures, main as features_main, svm_accuracy
from jaxdl.runs import load_run
from jaxdl.trainer import build_experiment, train_and_evaluate
from jaxdl.trees import named_leaves
from tests.conftest import compose_config, quick_overrides


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """LeNet-5 trained on digits 0-4."""
    run_dir = tmp_path_factory.mktemp("pretrained")
    train_and_evaluate(compose_config(*quick_overrides("data.classes=[0,1,2,3,4]", "trainer.batch_size=64")), run_dir)
    return run_dir


def finetune_overrides(pretrained, *extra):
    return quick_overrides("data.classes=[5,6,7]", "trainer.batch_size=32", f"trainer.init_from={pretrained}", *extra)


def test_head_is_replaced_and_backbone_copied(pretrained):
    source = named_leaves(load_run(pretrained).experiment.state.params)
    exp = build_experiment(compose_config(*finetune_overrides(pretrained)))
    target = named_leaves(exp.state.params)
    assert target["head.kernel"].shape == (500, 3) and source["head.kernel"].shape == (500, 5)
    for name in ("conv1.kernel", "conv2.bias", "hidden.0.kernel"):
        np.testing.assert_array_equal(np.asarray(target[name]), np.asarray(source[name]))


def test_frozen_layers_stay_bit_identical_and_the_rest_trains(pretrained, tmp_path):
    overrides = finetune_overrides(pretrained, "trainer.freeze=[conv1,hidden.0]", "optimizer.backbone_lr_scale=0.1")
    summary = train_and_evaluate(compose_config(*overrides), tmp_path)
    before = named_leaves(load_run(pretrained).experiment.state.params)
    after = named_leaves(load_run(tmp_path).experiment.state.params)
    for name in ("conv1.kernel", "conv1.bias", "hidden.0.kernel", "hidden.0.bias"):
        assert np.array_equal(np.asarray(after[name]), np.asarray(before[name])), name
    assert not np.array_equal(np.asarray(after["conv2.kernel"]), np.asarray(before["conv2.kernel"]))
    assert summary["test/accuracy"] > 0.8  # 3 classes


def test_bad_transfer_settings_are_one_line_errors(pretrained):
    with pytest.raises(ConfigError, match="conv9"):
        build_experiment(compose_config(*finetune_overrides(pretrained, "trainer.freeze=[conv9]")))
    with pytest.raises(CheckpointError, match="does not fit"):
        build_experiment(compose_config(*finetune_overrides(pretrained, "model=lenet5_classic")))


def test_penultimate_features_give_an_accurate_svm(pretrained):
    run = load_run(pretrained)
    features = LayerFeatures(run.model, run.preprocess, "hidden.0")
    train_x, test_x = features(run.dataset.train.images), features(run.dataset.test.images)
    assert train_x.shape == (len(run.dataset.train), 500)
    assert svm_accuracy(train_x, run.dataset.train.labels, test_x, run.dataset.test.labels) > 0.9
    conv = LayerFeatures(run.model, run.preprocess, "conv1")(run.dataset.test.images[:4])
    assert conv.shape == (4, 24 * 24 * 20)  # digits resized to 28x28, valid 5x5 conv, 20 filters


def test_feature_cli_reports_accuracy_and_rejects_unknown_layers(pretrained, capsys):
    features_main([f"run_dir={pretrained}", "layer=conv2", "max_train=200"])
    assert '"test/svm_accuracy"' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        features_main([f"run_dir={pretrained}", "layer=fc7"])
    assert exit_info.value.code == 2 and "conv1, conv2" in capsys.readouterr().err
