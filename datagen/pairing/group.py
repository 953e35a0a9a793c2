"""One task of the pairing step: a group of clusters. For each cluster, pass 1 links images in the encoder band; for
each route, pass 2 keeps the links inside the route's band, union-find makes disjoint sets, and every set gives its
cleaned, capped pairs. Writes the group's pairs (schema.PAIRS_SCHEMA) and returns what it kept and dropped."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datagen import paths, schema
from datagen.batch import derive_seed
from datagen.pairing.band import in_band
from datagen.pairing.config import SCORE_NONE, SCORE_OBJECT, Band, PairingConfig, RouteConfig
from datagen.pairing.kmeans import normalize_inplace
from datagen.pairing.object_score import edge_layout
from datagen.pairing.pairs import clean_members, set_pairs
from datagen.pairing.pass2 import GroupFeatures, link_scores
from datagen.pairing.search import band_links
from datagen.pairing.unionfind import UnionFind

log = logging.getLogger(__name__)


ABOVE_BAND = "clean: pair joined through its set but above the band (near-identical)"


def above_band(score: float, band: Band) -> bool:
    return bool(score > band.high or (score == band.high and not band.include_high))


@dataclass
class GroupTask:
    group: int
    files: list[str]  # bucket files: feature rows of this group's clusters, with their cluster id
    out_file: str
    band: Band  # pass 1
    center: Optional[np.ndarray]
    config: PairingConfig
    routes: list[tuple[str, RouteConfig]]
    seed: int


def _add(d: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        d[k] = d.get(k, 0) + v


def _hashes(values: list[bytes | None]) -> np.ndarray | None:
    """n x bytes uint8 matrix of the dHashes, or None when any image has none (cleaning then skips that check)."""
    if not values or any(not v for v in values) or len({len(v) for v in values}) != 1:
        return None
    return np.frombuffer(b"".join(values), np.uint8).reshape(len(values), -1)


def read_group(files: list[str]) -> pa.Table:
    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables) if tables else None
    if table is None or table.num_rows == 0:
        return pa.table({})
    # a stable order whatever order the bucket files were written in
    return table.sort_by([("cluster", "ascending"), ("source_id", "ascending"), ("uri", "ascending")])


def _with_edge_candidates(
    feats: GroupFeatures,
    x: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    sim1: np.ndarray,
    k: int,
    min_cosine: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pass-1 links plus each image's `k` nearest neighbours by edge layout inside its cluster (object routes only:
    their pass 2 verifies every candidate geometrically). New links carry the encoder's own cosine."""
    layout = np.stack([edge_layout(feats.edges(r)) for r in range(len(x))]).astype(np.float32)
    layout -= layout.mean(axis=0)
    layout /= np.maximum(np.linalg.norm(layout, axis=1, keepdims=True), 1e-12)
    seen = set(zip(i.tolist(), j.tolist()))
    ni, nj = [], []
    for s, e in zip(starts, ends):
        a, b, _ = band_links(layout[s:e], Band(low=min_cosine, high=1.0, include_high=True), "knn", k)
        for p, q in zip((a + s).tolist(), (b + s).tolist()):
            if (p, q) not in seen:
                seen.add((p, q))
                ni.append(p), nj.append(q)
    if not ni:
        return i, j, sim1, 0
    ni_, nj_ = np.asarray(ni, np.int64), np.asarray(nj, np.int64)
    s_new = np.einsum("ij,ij->i", x[ni_].astype(np.float64), x[nj_].astype(np.float64)).astype(np.float32)
    return np.r_[i, ni_], np.r_[j, nj_], np.r_[sim1, s_new], len(ni)


def run_group(task: GroupTask) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = task.config
    table = read_group(task.files)
    stats: dict[str, Any] = {
        "group": task.group,
        "images": table.num_rows,
        "clusters": 0,
        "links_pass1": 0,
        "routes": {},
    }
    rows: list[dict[str, Any]] = []
    if table.num_rows:
        feats = GroupFeatures(table)
        x = normalize_inplace(feats.embeddings, task.center)  # in place: the group's largest array exists once
        clusters = np.asarray(table.column("cluster").to_numpy(), np.int64)
        starts = np.flatnonzero(np.r_[True, clusters[1:] != clusters[:-1]])
        ends = np.r_[starts[1:], len(clusters)]
        stats["clusters"] = len(starts)
        # pass 1, cluster by cluster: the search never leaves a cluster
        li, lj, ls = [], [], []
        for s, e in zip(starts, ends):
            i, j, sim = band_links(x[s:e], task.band, cfg.pass1.search, cfg.pass1.max_neighbors)
            li.append(i + s), lj.append(j + s), ls.append(sim)
        i = np.concatenate(li) if li else np.empty(0, np.int64)
        j = np.concatenate(lj) if lj else np.empty(0, np.int64)
        sim1 = np.concatenate(ls) if ls else np.empty(0, np.float32)
        stats["links_pass1"] = int(len(i))
        if cfg.pass1.edge_neighbors and any(r.score == SCORE_OBJECT for _, r in task.routes) and feats.has_edges:
            i, j, sim1, added = _with_edge_candidates(
                feats, x, starts, ends, i, j, sim1, cfg.pass1.edge_neighbors, cfg.pass1.edge_min_cosine
            )
            stats["links_edge_layout"] = added
        cache: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        width = np.asarray(table.column("width").to_numpy(), np.int64)
        height = np.asarray(table.column("height").to_numpy(), np.int64)
        dhash = _hashes(table.column("dhash").to_pylist())
        cols = {c: table.column(c).to_pylist() for c in ("uri", "source_id", "entry", "caption")}
        for name, route in task.routes:
            if route.score not in cache:
                cache[route.score] = link_scores(route.score, feats, i, j, sim1)
            score2, skipped = cache[route.score]
            keep = in_band(score2, route.band)
            rstats = {
                "links_scored": int(len(i)),
                "links_kept": int(keep.sum()),
                "skipped": dict(skipped),
                "sets": 0,
                "largest_set": 0,
                "pairs": 0,
                "pairs_capped": 0,
            }
            uf = UnionFind(table.num_rows)
            uf.union_all(zip(i[keep].tolist(), j[keep].tolist()))
            kept_links = {
                (int(a), int(b)): (float(s1), float(s2))
                for a, b, s1, s2 in zip(i[keep], j[keep], sim1[keep], score2[keep])
            }
            for members in uf.sets():
                cluster = int(clusters[members[0]])
                set_id = f"{name}/{cluster}/{cols['source_id'][members[0]][:16]}"
                clean = clean_members(members, width, height, dhash, cfg.clean, rstats["skipped"], x, task.band.high)
                if len(clean) < 2:
                    continue
                rstats["sets"] += 1
                rstats["largest_set"] = max(rstats["largest_set"], len(clean))
                rng = np.random.default_rng(derive_seed(task.seed, "pairs", set_id))
                pi, pj = set_pairs(len(clean), cfg.max_pairs_per_set, rng)
                total = len(clean) * (len(clean) - 1) // 2
                rstats["pairs_capped"] += total - len(pi)
                flips = rng.random(len(pi)) < 0.5  # which image is the input: a seeded coin per pair
                for a, b, flip in zip(pi.tolist(), pj.tolist(), flips.tolist()):
                    ga, gb = clean[a], clean[b]
                    link = kept_links.get((min(ga, gb), max(ga, gb)))
                    if link is not None:
                        s1, s2 = link
                    else:
                        s1 = float(np.dot(x[ga], x[gb]))
                        s2 = (
                            float(link_scores(route.score, feats, np.array([ga]), np.array([gb]), np.array([s1]))[0][0])
                            if route.score != SCORE_NONE
                            else s1
                        )
                        # joined through the set, but itself too similar: the two are one photo, not a pair
                        if above_band(s1, task.band) or above_band(s2, route.band):
                            rstats["skipped"][ABOVE_BAND] = rstats["skipped"].get(ABOVE_BAND, 0) + 1
                            continue
                    if flip:
                        ga, gb = gb, ga
                    rows.append(
                        {
                            "uri_a": cols["uri"][ga],
                            "uri_b": cols["uri"][gb],
                            "source_id_a": cols["source_id"][ga],
                            "source_id_b": cols["source_id"][gb],
                            "entry_a": cols["entry"][ga],
                            "entry_b": cols["entry"][gb],
                            "caption_a": cols["caption"][ga],
                            "caption_b": cols["caption"][gb],
                            "task": route.task,
                            "route": name,
                            "set_id": set_id,
                            "set_size": len(clean),
                            "cluster": cluster,
                            "linked": link is not None,
                            "score_pass1": s1,
                            "score_pass2": s2 if route.score != SCORE_NONE else float("nan"),
                        }
                    )
                    rstats["pairs"] += 1
            stats["routes"][name] = rstats
    out = pa.Table.from_pylist(rows, schema=schema.PAIRS_SCHEMA)
    paths.atomic_write_parquet(Path(task.out_file), out)
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    return stats
