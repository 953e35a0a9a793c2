"""Union-find against networkx's connected components on random graphs; path compression and union by size."""

import math

import networkx as nx
import numpy as np
import pytest

from datagen.pairing.unionfind import UnionFind


@pytest.mark.parametrize("seed", range(6))
def test_sets_equal_networkx_components(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    m = int(rng.integers(0, 2 * n))
    edges = rng.integers(0, n, (m, 2)).tolist()
    uf = UnionFind(n)
    uf.union_all(edges)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    want = sorted(sorted(c) for c in nx.connected_components(g))
    got = sorted(uf.sets(min_size=1))
    assert got == want
    assert sorted(uf.sets()) == [c for c in want if len(c) >= 2]


def test_union_reports_whether_it_merged_and_sizes_add_up():
    uf = UnionFind(5)
    assert uf.union(0, 1) is True
    assert uf.union(1, 0) is False
    assert uf.union(2, 3) is True
    assert uf.union(3, 1) is True
    root = uf.find(0)
    assert uf.size[root] == 4
    assert uf.find(4) == 4 and uf.size[4] == 1


def test_find_compresses_the_path():
    uf = UnionFind(6)
    uf.parent = [0, 0, 1, 2, 3, 4]  # a chain 5 -> 4 -> 3 -> 2 -> 1 -> 0
    assert uf.find(5) == 0
    assert uf.parent == [0, 0, 0, 0, 0, 0]


def test_union_by_size_keeps_trees_shallow():
    n = 1024
    uf = UnionFind(n)
    # merging equal halves repeatedly is the worst case for a naive union; by size, depth stays <= log2 n
    step = 1
    while step < n:
        for a in range(0, n, 2 * step):
            uf.union(a + step, a)
        step *= 2

    def depth(x):
        d = 0
        while uf.parent[x] != x:
            x, d = uf.parent[x], d + 1
        return d

    assert max(depth(i) for i in range(n)) <= math.log2(n)
    assert len(uf.sets()) == 1
