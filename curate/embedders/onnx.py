"""``onnx`` / ``onnx-int8``: the same network exported to ONNX Runtime, fp32 or int8 weights.

Why not sentence-transformers' own ``backend="onnx"``: it needs optimum-onnx, whose only release
pins transformers < 4.58 while sentence-transformers 6 needs transformers 5, so the two cannot be
installed together. The export is three library calls (torch's exporter, onnxruntime's BERT graph
fusions, onnxruntime's dynamic quantiser), done once per model content and kept on disk.

int8 uses per-channel weight scales: per-tensor scales cost MiniLM ~4 points of cosine to fp32
(0.958 vs 0.994 mean on Debian descriptions) for no speed gain.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from curate.embedders.base import Embedder, load_tokenizer, normalise_rows, token_ids
from curate.embedders.models import derived_model, st_layout
from curate.embedders.transformer import space_id
from curate.errors import InputError

EXPORT_VERSION = "1"  # bump when the export recipe changes: it names the cache of its vectors
_OPSET = 17


def _require_runtime():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise InputError(
            "the onnx backends need onnxruntime and onnx: pip install 'curate[onnx]'", field="backend"
        ) from None
    return onnxruntime


def _export(source: Path, out: Path) -> None:
    """fp32 graph with fused attention/LayerNorm/GELU, plus its per-channel int8 twin."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel

    # Eager attention exports the classic pattern onnxruntime's fusions recognise (SDPA's does not).
    net = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if _uses_token_types(net) else [])

    class Hidden(torch.nn.Module):  # keyword call: transformers 5 reordered forward()'s positionals
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, *inputs):
            return self.net(**dict(zip(names, inputs, strict=True))).last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.int64)
    raw = out / "raw.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
    with torch.inference_mode():
        torch.onnx.export(
            Hidden(), tuple(sample for _ in names), str(raw), input_names=names, output_names=["hidden"],
            dynamic_axes=axes, opset_version=_OPSET, dynamo=False,
        )  # fmt: skip
    cfg = net.config
    fp32 = out / "model.onnx"
    try:
        heads, width = cfg.num_attention_heads, cfg.hidden_size
        fused = optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=width)
        fused.save_model_to_file(str(fp32))
        raw.unlink()
    except Exception:  # an architecture the BERT fusions do not know: the plain graph is still correct
        raw.rename(fp32)
    quantize_dynamic(
        str(fp32), str(out / "model_int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops lack inferred types
    )  # fmt: skip
    (out / "inputs.json").write_text(json.dumps(names))


def _uses_token_types(net) -> bool:
    import inspect

    return "token_type_ids" in inspect.signature(net.forward).parameters and bool(
        getattr(net.config, "type_vocab_size", 0)
    )


@lru_cache(maxsize=4)
def _session(file: Path, use_cuda: bool):
    ort = _require_runtime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(file), options, providers=providers)


def padded(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) of ``rows``, right-padded to the longest of them, without a row loop."""
    lengths = offsets[rows + 1] - offsets[rows]
    width = int(lengths.max())
    mask = np.arange(width)[None, :] < lengths[:, None]
    matrix = np.zeros((len(rows), width), np.int64)
    pos = (offsets[rows][:, None] + np.arange(width)[None, :])[mask]
    matrix[mask] = ids[pos]
    return matrix, mask.astype(np.int64)


class OnnxEmbedder(Embedder):
    backend = "onnx"

    def __init__(self, path: Path, batch_size: int, max_seq_length: int | None, device: str, int8: bool) -> None:
        ort = _require_runtime()
        self.pooling, own_max = st_layout(path)
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device == "cuda" and not has_cuda:
            raise InputError("device 'cuda': this onnxruntime has no CUDA provider (onnxruntime-gpu)", field="device")
        self.device = "cuda" if has_cuda and device != "cpu" else "cpu"
        folder = derived_model(path, f"onnx-v{EXPORT_VERSION}", _export)
        self.session = _session(folder / ("model_int8.onnx" if int8 else "model.onnx"), self.device == "cuda")
        self.inputs = json.loads((folder / "inputs.json").read_text())
        self.tokenizer = load_tokenizer(path, max_seq_length or own_max)
        self.batch_size = batch_size
        self.backend = "onnx-int8" if int8 else "onnx"
        self.cache_id = space_id(path, max_seq_length, f"-{self.backend}-v{EXPORT_VERSION}")

    def encode(self, texts: list[str]) -> np.ndarray:
        ids, offsets = token_ids(self.tokenizer, texts, special=True)
        order = np.argsort(-np.diff(offsets), kind="stable")  # similar lengths per batch: little padding
        out = np.empty((len(texts), 0), np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            input_ids, mask = padded(ids, offsets, rows)
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            hidden = self.session.run(None, feed)[0]
            if self.pooling == "cls":
                vectors = hidden[:, 0]
            else:
                vectors = np.einsum("bt,btd->bd", mask.astype(np.float32), hidden) / mask.sum(1, keepdims=True)
            if out.shape[1] == 0:
                out = np.empty((len(texts), vectors.shape[1]), np.float32)
            out[rows] = vectors
        return normalise_rows(out)
