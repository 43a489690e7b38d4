import jax
import numpy as np
from flax import nnx

from tests.explain_models import SmallConvNet
from xai.explain.probe import Probe, predict_fn
from xai.explain.shap_partition import PartitionShap


def test_shap_batches_are_padded_to_one_shape_so_the_model_compiles_once():
    """shap sends ragged batches (1, 2, ..., max_evals left over); each is padded to `batch_size`,
    or a multiple of it, and the padding never leaks into the probabilities returned."""
    probe = Probe(SmallConvNet(nnx.Rngs(0)))
    shapes = []
    logits = probe.logits
    probe.logits = lambda images, batch_size=None: shapes.append(np.shape(images)) or logits(images, batch_size)
    predict = predict_fn(probe, 64, fixed_batch=True)
    images = np.random.default_rng(0).random((150, 10, 10, 1)).astype(np.float32)
    expected = np.asarray(jax.nn.softmax(logits(images)))
    for n in (1, 7, 64, 150):
        np.testing.assert_allclose(predict(images[:n]), expected[:n], atol=1e-6)
    assert shapes == [(64, 10, 10, 1)] * 3 + [(192, 10, 10, 1)]  # probe.logits runs 192 as three chunks of 64
    explainer = PartitionShap(SmallConvNet(nnx.Rngs(0)), batch_size=64)
    assert explainer.max_evals == 5000 and explainer.predict(images[:3]).shape == (3, 4)
