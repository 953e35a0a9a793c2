"""Pass 1's edge-layout candidates (pairing.pass1.edge_neighbors) in a real group task: the labelled set's horse
and its outline, whose encoder cosine lies below pass 1's band, become a pair only with the candidates on, through
pass 2's edge fallback; unrelated photos proposed the same way are refused by pass 2."""

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datagen.batch import SourceImage, WorkBatch
from datagen.pairing.config import Band, GeneralEditingRoute, PairingConfig, Pass1Config, ReferenceGenerationRoute
from datagen.pairing.features import features_table
from datagen.pairing.group import GroupTask, run_group
from datagen.pairing.quality import LABELLED_SET
from operators.features.classical import ClassicalFeatures
from operators.features.dhash import ImageDHash
from operators.features.object_keypoints import ObjectKeypoints

NAMES = ["shape_horse.jpg", "shape_horse_template.jpg", "unrelated_camera.jpg", "unrelated_moon.jpg", "logo_mpl_0.jpg"]
BAND = Band(low=0.999, high=1.0)  # pass 1 by the encoder finds nothing here


def _pairs(tmp_path, edge_neighbors: int) -> list[tuple[str, str]]:
    images = {n: cv2.cvtColor(cv2.imread(str(LABELLED_SET / n)), cv2.COLOR_BGR2RGB) for n in NAMES}
    batch = WorkBatch("feat-00000", {}, 0, "r", entries=[{"uri": u} for u in images])
    batch.items = [SourceImage(u, f"id-{i}", im) for i, (u, im) in enumerate(images.items())]
    for op in (ClassicalFeatures(), ObjectKeypoints(), ImageDHash()):
        batch = op(batch)
    bucket = tmp_path / f"n{edge_neighbors}" / "g-00000" / "feat-00000.parquet"
    bucket.parent.mkdir(parents=True)
    table = features_table(batch)
    pq.write_table(table.append_column("cluster", pa.array(np.zeros(len(images), np.int32))), bucket)
    cfg = PairingConfig(enabled=True, pass1=Pass1Config(band=BAND, edge_neighbors=edge_neighbors))
    out = bucket.parent.parent / "pairs.parquet"
    task = GroupTask(
        0,
        [str(bucket)],
        str(out),
        BAND,
        None,
        cfg,
        [("general_editing", GeneralEditingRoute()), ("reference_generation", ReferenceGenerationRoute())],
        seed=0,
    )
    stats = run_group(task)
    assert stats["links_pass1"] == 0
    return sorted(tuple(sorted((p["uri_a"], p["uri_b"]))) for p in pq.read_table(out).to_pylist())


def test_edge_candidates_find_the_shape_and_its_template(tmp_path):
    assert _pairs(tmp_path, 0) == []
    assert _pairs(tmp_path, 2) == [("shape_horse.jpg", "shape_horse_template.jpg")]
