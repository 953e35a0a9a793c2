"""Disjoint sets with union by size and path compression: the second half of the two-pass union-find that turns
kept links into sets of related images. Near-constant time per operation, so it scales with the number of links."""

from __future__ import annotations

from typing import Iterable

import numpy as np


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        # compress: every node on the path now points at the root
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> bool:
        """Join the sets of a and b; False when they were already one set."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True

    def union_all(self, edges: Iterable[tuple[int, int]]) -> None:
        for a, b in edges:
            self.union(int(a), int(b))

    def labels(self) -> np.ndarray:
        """Root of every element."""
        return np.fromiter((self.find(i) for i in range(len(self.parent))), dtype=np.int64, count=len(self.parent))

    def sets(self, min_size: int = 2) -> list[list[int]]:
        """Members of every set with at least `min_size` elements, each sorted, ordered by smallest member."""
        groups: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            groups.setdefault(self.find(i), []).append(i)
        return sorted((m for m in groups.values() if len(m) >= min_size), key=lambda m: m[0])
