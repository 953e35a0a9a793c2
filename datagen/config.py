"""Recipes: YAML files validated into typed config, with `key=value` overrides.
A bad recipe fails before any work, naming the key, the value and what is allowed."""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


def no_repeats(values: list) -> list:
    """A list option whose entries must be distinct (e.g. an operator's `tasks`): use as
    `Annotated[list[...], AfterValidator(no_repeats)]`."""
    if len(set(values)) != len(values):
        raise ValueError(f"entries must not repeat, got {values}")
    return values


class ConfigError(ValueError):
    """A recipe problem; the message names the key, the value and what is allowed."""


class Section(BaseModel):
    """Base of every config class: unknown keys are errors, and defaults live here, not in recipes."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Marks a field added after samples were keyed, whose default reproduces what ran before it existed: at that default
# it stays out of the fingerprint and provenance params, so adding it keeps every key; any other value is recorded.
KEY_NEUTRAL_DEFAULT = {"key_neutral_default": True}


def neutral_at_default(model: BaseModel) -> set[str]:
    """The fields of `model` marked KEY_NEUTRAL_DEFAULT that hold their default."""
    out = set()
    for name, f in type(model).model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        if not extra.get("key_neutral_default"):
            continue
        value = getattr(model, name)
        # a nested section is at its default when what defines samples is: its execution keys may differ
        if value == f.default or (isinstance(value, BaseModel) and content(value) == content(f.default)):
            out.add(name)
    return out


class InputConfig(Section):
    path: str = Field(
        "builtin:photos", description="folder, tar (or folder of tars), parquet/CSV list, fsspec URI, or builtin:photos"
    )
    format: Literal["auto", "folder", "tar", "parquet", "csv", "builtin"] = "auto"
    path_column: str = "path"
    caption_column: Optional[str] = "caption"
    extensions: list[str] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
    max_pixels: int = Field(64_000_000, gt=0, description="decompression-bomb cap on width*height before decoding")
    max_bytes: int = Field(64 << 20, gt=0, description="largest encoded file accepted")
    min_side: int = Field(64, ge=1)
    max_aspect: float = Field(4.0, ge=1.0)
    max_side: int = Field(1024, ge=16, description="decoded images are downscaled so their long side is at most this")
    draft_decode: bool = Field(
        False,
        json_schema_extra=KEY_NEUTRAL_DEFAULT,
        description="JPEGs larger than max_side decode at 1/2-1/8 scale (libjpeg DCT scaling) before the final "
        "resize: 3-8x faster on camera-size photos; pixels differ slightly from a full decode (features, pairs and "
        "keys may move)",
    )
    images_per_partition: int = Field(
        32, ge=1, description="images per unit of work; one partition -> one or more shards"
    )
    limit: Optional[int] = Field(None, ge=1, description="use only the first N inputs (after sorting)")


class OutputConfig(Section):
    dir: str = "out/demo"
    samples_per_shard: int = Field(1000, ge=1)
    target_shard_mb: float = Field(512, gt=0)
    image_format: Literal["jpg", "png", "webp"] = "jpg"
    jpeg_quality: int = Field(95, ge=1, le=100)


# Nothing is downloaded at run time: the hub libraries answer from their local cache or fail with the missing file.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class RuntimeConfig(Section):
    executor: Literal["ray", "local"] = Field(
        "ray", description="ray: Ray Data streaming; local: the same stages in a plain loop"
    )
    address: Optional[str] = Field(None, description="Ray cluster address; None uses RAY_ADDRESS or starts a local Ray")
    num_cpus: Optional[int] = Field(None, ge=1, description="CPUs of the embedded local Ray (default: all)")
    progress: bool = True
    actor_pools: list[str] = Field(
        default_factory=list,
        description="operator names to run as actor pools even "
        "though they hold no model (for example an operator with a costly setup)",
    )
    max_task_retries: int = Field(
        3, ge=0, description="retries of a partition whose worker died (tasks) or actor restarts"
    )
    concurrent_jobs: bool = Field(
        True,
        description="jobs that do not read each other's output (images and features) "
        "run at the same time, their partitions interleaved on the cluster; false: one job after another",
    )
    env: dict[str, str] = Field(
        default_factory=lambda: dict(OFFLINE_ENV),
        description="environment variables of the driver and every Ray worker; by default the Hugging Face libraries "
        "stay offline (a recipe names local paths or hub ids already in the workers' cache: nothing is downloaded)",
    )
    gpu_weights: dict[str, float] = Field(
        default_factory=dict,
        description="operator name -> its weight when the GPUs are divided among the GPU stages that run at once "
        "(default: the GPUs per actor it asks for); a stage that is slower per item deserves more",
    )
    task_cpu_share: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="share of the cluster's CPUs (at least one) that no actor may hold: the tasks' "
        "(read, decode, classical stages, commits)",
    )
    allow_cpu_fallback: bool = Field(
        False,
        description="a stage placed on a GPU whose worker has no usable CUDA (or whose ONNX session runs on the CPU "
        "provider) runs on the CPU, named and counted under run.json's fallbacks; false: that is an error. A "
        "rehearsal on logical GPUs sets it",
    )
    actor_start_timeout_s: int = Field(
        900,
        ge=1,
        description="how long a model stage's first actors may take to start "
        "(load their model) before the run fails for want of cluster resources",
    )


# Config fields that say where and how a stage runs, not what it makes: wherever they appear (an operator's config, a
# model backend inside a section), they stay out of the recipe fingerprint, and so out of every sample key, and out
# of provenance params. Moving a stage from GPU to CPU, or resizing its batches or pool, keeps every key.
EXECUTION_KEYS = frozenset(
    {
        "device",
        "num_gpus",
        "num_cpus",
        "batch_size",
        "concurrency",
        "num_threads",
        "actors",
        "tensor_parallel_size",
        "gpu_memory_utilization",
        # what the run does when the stage cannot run on its workers (skip it, counted): no sample it makes changes
        "optional",
        # when a model backend counts as broken (datagen.isolation.BackendBroken): how the job fails, not what it makes
        "max_failure_rate",
        "max_consecutive_failures",
        # where a model's input is preprocessed and how its forward runs (GPU tensors vs PIL, torch.compile, the
        # SDPA kernel, batches per call): like `device`, numerics within tolerance, the same samples
        "preprocess_on_device",
        "compile",
        "attention",
        "batches_per_call",
        "image_batch_size",
    }
)


def content(model: BaseModel) -> dict[str, Any]:
    """A config as JSON without its execution fields (EXECUTION_KEYS), nested configs included."""
    d = model.model_dump(mode="json")
    neutral = neutral_at_default(model)
    for name in type(model).model_fields:
        if name in EXECUTION_KEYS or name in neutral:
            d.pop(name, None)
        elif name in d:
            d[name] = _content_of(getattr(model, name), d[name])
    return d


def _content_of(value: Any, dumped: Any) -> Any:
    if isinstance(value, BaseModel):
        return content(value)
    if isinstance(value, dict) and isinstance(dumped, dict):
        return {k: _content_of(value[k], dumped[k]) for k in value if k in dumped}
    if isinstance(value, (list, tuple)) and isinstance(dumped, list):
        return [_content_of(v, dv) for v, dv in zip(value, dumped)]
    return dumped


class Recipe(Section):
    name: str = "datagen"
    seed: int = 0
    input: InputConfig = InputConfig()
    output: OutputConfig = OutputConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    # operator name -> that operator's config (validated against the catalog's config classes)
    operators: dict[str, Any] = {}
    # further sections (instructions, pairing, ...) named by the catalog
    sections: dict[str, Any] = Field(default_factory=dict, exclude=True)

    def section(self, name: str) -> Any:
        return self.sections[name]

    def fingerprint(self) -> str:
        """Hash of everything that changes the samples, not where they go or how they are executed: no output dir,
        no runtime section, no placement (device, GPUs, batch size, pool: EXECUTION_KEYS) of any stage."""
        d = self.model_dump(mode="json", exclude={"output": {"dir"}, "runtime": True})
        d["input"].pop("path", None)
        for name in neutral_at_default(self.input):
            d["input"].pop(name, None)
        d["operators"] = {k: content(v) for k, v in self.operators.items()}
        d["sections"] = {k: content(v) for k, v in sorted(self.sections.items())}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Catalog:
    """What a recipe may name: operator name -> its config class, and further top-level section -> its config class.
    The core knows no operator; pipelines/ builds the catalog of the operators its jobs use and passes it in."""

    operators: Mapping[str, type[Section]] = field(default_factory=dict)
    sections: Mapping[str, type[Section]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = set(self.sections) & set(Recipe.model_fields)
        if clash:
            raise ValueError(f"recipe sections {sorted(clash)} clash with the recipe's own keys")


# YAML ------------------------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that also refuses explicit tags (!foo, !!python/...): recipes are plain data."""


def _refuse_tag(loader: yaml.Loader, tag_suffix: str, node: yaml.Node) -> Any:
    raise ConfigError(f"YAML tags are not allowed in recipes: {node.tag!r} at line {node.start_mark.line + 1}")


_StrictLoader.add_multi_constructor("!", _refuse_tag)
_StrictLoader.add_multi_constructor("tag:yaml.org,2002:python/", _refuse_tag)


def load_yaml(text: str, origin: str = "<recipe>") -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except yaml.YAMLError as e:
        raise ConfigError(f"{origin}: not valid YAML: {e}") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} has an empty key")
    value = load_yaml(raw, f"override {key}") if raw.strip() else ""
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for k in keys[:-1]:
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {k!r} is a value, not a section")
            node = nxt
        node[keys[-1]] = value
    return raw


# Validation with readable errors ----------------------------------------------------------------------------
def _allowed(cls: type[BaseModel], loc: tuple) -> str:
    """Describe what is allowed at `loc` inside `cls`: the field's type, or the known keys of a section."""
    if not loc:
        return ""
    model: Any = cls
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return ""
        model = fields[part].annotation
        model = next((a for a in typing.get_args(model) if isinstance(a, type) and issubclass(a, BaseModel)), model)
    fields = getattr(model, "model_fields", None)
    if not fields:
        return ""
    last = loc[-1]
    if last in fields:
        ann = fields[last].annotation
        desc = fields[last].description
        return f"expected {_type_name(ann)}" + (f" ({desc})" if desc else "")
    return "allowed keys: " + ", ".join(k for k in fields if k != "sections")


def _type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(ann))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", object)):
        return " or ".join(_type_name(a) for a in typing.get_args(ann))
    return getattr(ann, "__name__", str(ann))


def validate_section(cls: type[BaseModel], data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a mapping of keys, got {data!r}")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = tuple(err["loc"])
            key = ".".join([prefix, *map(str, loc)]) if prefix else ".".join(map(str, loc))
            value = err.get("input")
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                lines.append(f"{key}: unknown key; {_allowed(cls, loc)}")
            else:
                allowed = _allowed(cls, loc)
                lines.append(f"{key}={value!r}: {msg}" + (f"; {allowed}" if allowed else ""))
        raise ConfigError("invalid recipe:\n  " + "\n  ".join(lines)) from None


def build_recipe(raw: dict[str, Any], catalog: Catalog) -> Recipe:
    if not isinstance(raw, dict):
        raise ConfigError(f"a recipe is a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    section_data = {name: raw.pop(name) for name in list(raw) if name in catalog.sections}
    operators_raw = raw.pop("operators", None) or {}
    recipe = validate_section(Recipe, raw, "")
    if not isinstance(operators_raw, dict):
        raise ConfigError(f"operators: expected a mapping of operator name -> config, got {operators_raw!r}")
    ops = {}
    for name, data in operators_raw.items():
        if name not in catalog.operators:
            raise ConfigError(f"operators.{name}: unknown operator; allowed: {', '.join(sorted(catalog.operators))}")
        ops[name] = validate_section(catalog.operators[name], data, f"operators.{name}")
    recipe.operators = ops
    recipe.sections = {
        name: validate_section(cls, section_data.get(name), name) for name, cls in sorted(catalog.sections.items())
    }
    return recipe


def load_recipe(path: str | Path | None, overrides: list[str] | None, catalog: Catalog) -> Recipe:
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"recipe file {str(p)!r} does not exist")
        raw = load_yaml(p.read_text(), str(p)) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a recipe is a mapping of sections")
    raw = apply_overrides(raw, overrides or [])
    return build_recipe(raw, catalog)
