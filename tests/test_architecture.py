"""Dependencies point one way: pipelines -> operators -> datagen (the core). The core imports nothing from operators/
or pipelines/ (at any level, function-local imports and import_module calls included), operators import neither
pipelines/ nor Ray (the runtime owns Ray), and each job's stage list keeps the order of its roles."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, wherever it stands, plus import_module("...") calls."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, mod in imported_modules(path):
            if mod.split(".")[0] in forbidden:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    return bad


def test_the_core_imports_no_operator_and_no_pipeline():
    assert offenders("datagen", ("operators", "pipelines")) == []


def test_operators_import_neither_ray_nor_pipelines():
    assert offenders("operators", ("ray", "pipelines")) == []


def test_the_checker_sees_function_local_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "def f():\n    from operators.x import y\n    import ray.data\n    importlib.import_module('pipelines.z')\n"
    )
    assert [m for _, m in imported_modules(f)] == ["operators.x", "ray.data", "pipelines.z"]


@pytest.mark.parametrize("recipe", ["configs/demo.yaml", "configs/ace_full.yaml"])
def test_every_job_stage_list_keeps_its_role_order(recipe):
    from datagen.jobs import check_stage_order
    from pipelines import JOBS, load_recipe

    r = load_recipe(ROOT / recipe, ["instructions.methods=[template]"])  # the LLM stages need their models here
    for job in JOBS:
        stages = check_stage_order(job.name, job.stages(r), job.given)
        assert all(a.role.value <= b.role.value for a, b in zip(stages, stages[1:]))
        assert all(op.reads or op.writes for op in stages), "every stage says what it reads and writes"


def test_a_stage_list_out_of_role_order_is_refused():
    from datagen.config import ConfigError
    from datagen.jobs import check_stage_order
    from operators.assembly.lcu_chains import LcuChains
    from operators.conditions.grayscale import Grayscale

    with pytest.raises(ConfigError, match="grayscale .make. cannot run after lcu_chains .compose."):
        check_stage_order("images", [LcuChains(), Grayscale()])


def test_a_stage_that_reads_a_field_no_earlier_stage_writes_is_refused():
    from datagen.batch import ENTRIES
    from datagen.config import ConfigError, InputConfig
    from datagen.ingest.read import ReadImages
    from datagen.jobs import check_stage_order
    from datagen.pairing.features import WriteFeatures
    from operators.assembly.lcu_chains import LcuChains
    from operators.conditions.grayscale import Grayscale
    from operators.features.dhash import ImageDHash

    # WriteFeatures needs an embedding; a dHash alone is not one
    with pytest.raises(ConfigError, match="stage write_features reads items.features.embedding, which no earlier"):
        check_stage_order("features", [ReadImages(InputConfig()), ImageDHash(), WriteFeatures("/tmp/x")], (ENTRIES,))
    # LCU chains say a CU's turns another way: an instruction stage must have run
    with pytest.raises(ConfigError, match="stage lcu_chains reads samples.instruction"):
        check_stage_order("images", [ReadImages(InputConfig()), Grayscale(), LcuChains()], (ENTRIES,))
    # the read stage reads the plan's entries: a job whose plan gives none cannot list it first
    with pytest.raises(ConfigError, match="stage read reads entries"):
        check_stage_order("images", [ReadImages(InputConfig()), Grayscale()])


# The layout (issue 21): operator families in folders, each with its base; shared model code in operators/models and
# the pairs job's and chains' few stages (read pairs, pair samples, LCU chains, task mix) in operators/assembly.
FAMILIES = ("conditions", "edits", "features", "scoring", "instructions")
SHARED = "models"  # loaders and backends that several families use: any family may import them
HOMES = ("assembly",)  # a small home of stages that share no base


def test_operators_top_level_is_a_handful_of_modules():
    top = [p.name for p in (ROOT / "operators").glob("*.py")]
    assert len(top) <= 10, top
    folders = {p.name for p in (ROOT / "operators").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {*FAMILIES, SHARED, *HOMES}, folders


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_its_base(family):
    assert (ROOT / "operators" / family / "base.py").is_file(), family


def base_classes_from_leaves(path: Path) -> list[str]:
    """Base classes a module imports from a leaf module of another operator family (not its base.py, not models/)."""
    tree = ast.parse(path.read_text(), str(path))
    family = path.relative_to(ROOT / "operators").parts[0]
    bases = {
        b.id for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for b in node.bases if isinstance(b, ast.Name)
    }
    bad = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("operators.")):
            continue
        parts = node.module.split(".")
        if len(parts) < 3 or parts[1] in (family, SHARED) or parts[-1] == "base":
            continue
        bad += [
            f"{path.relative_to(ROOT)} subclasses {a.name} from {node.module}" for a in node.names if a.name in bases
        ]
    return bad


def test_no_family_subclasses_a_leaf_of_another_family():
    bad = [b for p in sorted((ROOT / "operators").rglob("*.py")) for b in base_classes_from_leaves(p)]
    assert bad == []


def test_the_leaf_check_sees_a_base_from_another_familys_leaf(tmp_path, monkeypatch):
    leaf = ROOT / "operators" / "edits" / "_probe_leaf.py"
    leaf.write_text(
        "from operators.conditions.canny import Canny\nfrom operators.conditions.base import ConditionOperator\n"
        "class A(Canny): pass\nclass B(ConditionOperator): pass\n"
    )
    try:
        assert base_classes_from_leaves(leaf) == [
            "operators/edits/_probe_leaf.py subclasses Canny from operators.conditions.canny"
        ]
    finally:
        leaf.unlink()
