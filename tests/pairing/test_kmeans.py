"""Spherical K-means with faiss: K shrinks for small inputs (and says so), clusters of related embeddings are found,
centroids are unit length, k-means++ seeding is used and deterministic."""

import logging

import numpy as np

from datagen.pairing.kmeans import Assigner, effective_clusters, kmeanspp_seeds, normalize, train_spherical


def blobs(n_blobs=6, per=40, dim=32, spread=0.2, seed=0):
    rng = np.random.default_rng(seed)
    centres = normalize(rng.standard_normal((n_blobs, dim)))
    x = np.repeat(centres, per, axis=0) + spread * rng.standard_normal((n_blobs * per, dim)) / np.sqrt(dim)
    return normalize(x), np.repeat(np.arange(n_blobs), per)


def test_cluster_count_shrinks_for_small_inputs_with_a_note(caplog):
    with caplog.at_level(logging.INFO, logger="datagen.pairing.kmeans"):
        assert effective_clusters(300, wanted=1000, min_cluster_size=64) == 4
    assert "using 4" in caplog.text
    assert effective_clusters(10, wanted=1000, min_cluster_size=64) == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="datagen.pairing.kmeans"):
        assert effective_clusters(10**6, wanted=1000, min_cluster_size=64) == 1000
    assert caplog.text == ""


def test_spherical_kmeans_recovers_blobs():
    x, truth = blobs()
    for init in ("kmeans++", "random"):
        c, obj = train_spherical(x, 6, iterations=20, seed=0, init=init, redo=2)
        assert c.shape == (6, 32) and np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5)
        labels, sims = Assigner(c)(x)
        # every true blob lands in exactly one cluster
        assert all(len(set(labels[truth == b])) == 1 for b in range(6))
        assert len(set(labels)) == 6
        assert obj > 0.9 * len(x) and (sims > 0.8).all()


def test_training_is_deterministic_and_k_is_capped_by_points():
    x, _ = blobs(seed=1)
    a, _ = train_spherical(x, 6, seed=3)
    b, _ = train_spherical(x, 6, seed=3)
    assert np.array_equal(a, b)
    c, _ = train_spherical(x[:4], 50)
    assert len(c) == 4
    one, _ = train_spherical(x, 1)
    assert one.shape == (1, 32)


def test_kmeanspp_seeds_spread_over_blobs():
    x, truth = blobs(n_blobs=5, per=50)
    seeds = kmeanspp_seeds(x, 5, np.random.default_rng(0))
    nearest = np.argmax(seeds @ normalize(np.stack([x[truth == b].mean(0) for b in range(5)])).T, axis=1)
    assert sorted(nearest.tolist()) == [0, 1, 2, 3, 4]
