"""The `pairing` recipe section: which encoder, the K-means and pass-1 settings, the pass-2 routes (one per ACE
task, each with its score and band), the per-set cap and the cleaning filters. Defaults fit the demo; recipes
override."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, model_validator

from datagen import schema
from datagen.config import Section

ENCODERS = ("classical_features", "siglip_features", "mobilenet_features")
SCORE_NONE = "none"
SCORE_OBJECT = "object"
SCORE_FACE = "face"


class Band(Section):
    """An interval of a score. By default [low, high): related but not duplicates."""

    low: float
    high: float
    include_low: bool = True
    include_high: bool = False

    @model_validator(mode="after")
    def _check(self):
        if not self.low <= self.high:
            raise ValueError(f"need low <= high, got low={self.low} high={self.high}")
        return self

    def describe(self) -> str:
        return f"{'[' if self.include_low else '('}{self.low}, {self.high}{']' if self.include_high else ')'}"


class KMeansConfig(Section):
    clusters: int = Field(1000, ge=1, description="K at full scale (ACE/SemDeDup: tens of thousands for 100M+ images)")
    min_cluster_size: int = Field(64, ge=1, description="K shrinks to n_images // this for small inputs (logged)")
    train_sample: int = Field(
        1_000_000, ge=1, description="embeddings drawn (seeded) to train K-means; all are assigned"
    )
    iterations: int = Field(20, ge=1)
    init: Literal["auto", "kmeans++", "random"] = Field(
        "auto", description="seeding: greedy k-means++ (auto: up to 5000 clusters) or faiss's random"
    )
    init_size: int = Field(10_000, ge=1, description="rows the k-means++ seeding looks at")
    redo: int = Field(1, ge=1, description="independent runs; the best objective is kept")
    gpu: Union[bool, Literal["auto"]] = Field(
        "auto", description="faiss GPU indexes: true, false, or auto (when faiss has GPUs)"
    )
    clusters_per_task: int = Field(64, ge=1, description="clusters handled by one union-find task")


class Pass1Config(Section):
    band: Optional[Band] = Field(None, description="cosine band of related images; None: the encoder's default band")
    search: Literal["range", "knn"] = "range"
    max_neighbors: int = Field(16, ge=1, description="links kept per image (the most similar in band)")
    center: Optional[bool] = Field(
        None, description="subtract the collection mean before cosine; None: encoder's default"
    )
    edge_neighbors: int = Field(
        2,
        ge=0,
        description="more candidate links per image: its nearest neighbours by edge layout "
        "(inside the cluster, cosine >= edge_min_cosine), for the object routes' pass 2 to verify; 0: off",
    )
    edge_min_cosine: float = Field(0.5, ge=-1, le=1)


class RouteConfig(Section):
    """One pass-2 route: pass-1 links re-scored by `score` and kept inside `band` become sets of `task`."""

    enabled: bool = True
    task: str
    score: Literal["none", "object", "face"]
    band: Band

    @model_validator(mode="after")
    def _check(self):
        if self.task not in schema.TASKS:
            raise ValueError(f"task {self.task!r} is not an ACE task known to datagen.schema")
        return self


class GeneralEditingRoute(RouteConfig):
    # object consistency high: most of the scene is kept, something changed
    task: str = "General Editing"
    score: Literal["none", "object", "face"] = SCORE_OBJECT
    band: Band = Band(low=0.3, high=0.95)


class ReferenceGenerationRoute(RouteConfig):
    # object consistency low but real: the same subject seen in another framing, view or context
    task: str = "Reference Generation"
    score: Literal["none", "object", "face"] = SCORE_OBJECT
    band: Band = Band(low=0.03, high=0.3)


class FacialEditingRoute(RouteConfig):
    # ACE: faces of one identity, similarity above 0.8 and below 0.9 so that identical photos are not paired
    enabled: bool = False
    task: str = "Facial Editing"
    score: Literal["none", "object", "face"] = SCORE_FACE
    band: Band = Band(low=0.8, high=0.9, include_low=False)


class RoutesConfig(Section):
    general_editing: GeneralEditingRoute = GeneralEditingRoute()
    reference_generation: ReferenceGenerationRoute = ReferenceGenerationRoute()
    facial_editing: FacialEditingRoute = FacialEditingRoute()

    def items(self) -> list[tuple[str, RouteConfig]]:
        return [(name, getattr(self, name)) for name in type(self).model_fields]


class CleanConfig(Section):
    min_side: int = Field(256, ge=1, description="shorter side of both original images, in pixels")
    max_aspect: float = Field(3.0, ge=1.0)
    near_duplicate_bits: int = Field(
        6,
        ge=-1,
        le=256,
        description="images of a set whose 256-bit dHash differ in at most this many bits count as one; -1 turns it "
        "off",
    )


class PairingConfig(Section):
    enabled: bool = False
    encoder: Literal["classical_features", "siglip_features", "mobilenet_features"] = "classical_features"
    kmeans: KMeansConfig = KMeansConfig()
    pass1: Pass1Config = Pass1Config()
    routes: RoutesConfig = RoutesConfig()
    max_pairs_per_set: int = Field(50, ge=1, description="pairs drawn (seeded) from a set with more")
    clean: CleanConfig = CleanConfig()
    pairs_per_partition: int = Field(200, ge=1, description="pairs per unit of work of the pairs job (one row group)")
    features_per_partition: Optional[int] = Field(
        None,
        ge=1,
        description="images per unit of work of the features job; None: input.images_per_partition. Features "
        "cost a fraction of the images job's work per image, so a larger size schedules fewer, fuller tasks",
    )
