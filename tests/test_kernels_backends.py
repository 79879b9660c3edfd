"""The pattern engine's two kernel backends (attnwidget._kernels): numpy equals numba, and the default
install works without numba.

* Kernel by kernel, on random tiles: causal (the loop bounds stop each row) and causal with a mask
  tensor (softmaxed over every key, counted up to the row), bidirectional, learned sinks, repeated
  tokens, groups of heads sharing a key head, ragged last blocks, pooling with ``fr != fc``,
  cross-attention rectangles; probability tiles in float32 and float64; pooling; route proximities.
  They agree to float32 rounding (numba's exponential is a polynomial, numpy's is ``np.exp``).
* The whole engine under the forced numpy backend: every field of each layer's summary equals the
  numba one, the metrics, roles, tiles and rollout rows equal the dense reference (tests/dense_reference.py).
* In fresh interpreters: ``import attnwidget`` imports neither numba nor llvmlite, and with numba
  hidden the engine, the routes' kernel and warm_up fall back to numpy while attention_flow refuses
  with the ``pip install "attnwidget[flow]"`` line.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from widget_captures import make_capture

import attnwidget
import dense_reference as ref
from attnwidget import _engine as E
from attnwidget import _kernels as K
from attnwidget import _kernels_numpy
from attnwidget._fused import _pairs, _positions
from attnwidget._recorder import QKRecord
from attnwidget.capture import Capture
from attnwidget.errors import MissingExtraError
from helpers import LONG_TEXT, tiny_model

ro = sys.modules["attnwidget.rollout"]  # the module (the package exports the function)
LO = HI = np.float32(0.01)
RTOL, ATOL = 1e-5, 1e-7  # float32 rounding of the two exponentials and of the summation orders
PIP = 'pip install "attnwidget[flow]"'


@pytest.fixture(scope="module")
def numba_kernels():
    try:
        return K.load("numba")
    except MissingExtraError:
        pytest.skip("numba is not installed: nothing to compare the numpy backend with")


def close(got, want, what, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol,
                               err_msg=what)


def same_outputs(got: dict, want: dict, what: str) -> None:
    """Every output buffer equal to float32 rounding; the threshold counts exactly."""
    for name in want:
        if name == "stats":
            for s, stat in enumerate(K.STAT):
                if s in (K.BELOW, K.ABOVE):
                    np.testing.assert_array_equal(got[name][..., s], want[name][..., s], err_msg=f"{what}: {stat}")
                else:
                    close(got[name][..., s], want[name][..., s], f"{what}: {stat}")
        else:
            close(got[name], want[name], f"{what}: {name}")


# ----------------------------------------------------------------------------- kernel by kernel


def ref_attention(rng, layers, heads, n, causal):
    logits = rng.standard_normal((layers, heads, n, n)) * 3
    if causal:
        logits[..., np.triu(np.ones((n, n), dtype=bool), 1)] = -np.inf
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def score_block(kernels, groups, r0, n, n_keys, *, layer_causal, causal, sinks, window, ids, fr, fc, pool=True,
                seed=0):
    """One block of the fused pass over score tiles, as ``_LayerRun.block`` drives it: ``groups`` are
    ``(h0, scores [g, m, c])`` of the heads sharing a key head, run one after another into the same
    buffers; the heatmap tiles start from random cells (the kernels max into them)."""
    heads = sum(t.shape[0] for _, t in groups)
    m, c = groups[0][1].shape[1:]
    threads = kernels.num_threads()
    cells = np.random.default_rng(seed).random((heads + 1, math.ceil(n / fr), math.ceil(n_keys / fc))) * 0.05
    out = {"stats": np.zeros((heads, n, K.NSTATS)), "mean": np.zeros((m, c), np.float32),
           "tiles": cells[:heads].astype(np.float32), "mean_tile": cells[heads].astype(np.float32)}
    partial = np.zeros((threads, heads, n_keys), np.float32)
    pair_ptr, pair_key, _ = _pairs(ids, n)
    ebuf = np.empty((threads, n_keys), np.float32)
    acc, acc2 = (np.empty((threads, n_keys + fc), np.int32) for _ in range(2))
    for h0, tile in groups:
        kernels.head_rows(tile, r0, h0, layer_causal, causal, sinks, LO, HI, window, pair_ptr, pair_key, fr, fc,
                          pool, h0 + tile.shape[0] == heads, out["stats"], partial, out["mean"],
                          np.float32(1 / heads), out["tiles"], out["mean_tile"], ebuf, acc, acc2, _positions(n_keys))
    out["colsum"] = np.zeros((heads, n_keys))
    kernels.flush_columns(partial, out["colsum"], c)
    assert not partial.any()
    return out


# name: (heads per group, n, n_keys, r0, m, layer_causal, causal, sink logits, window, repeats, fr, fc)
SCORE_CASES = {
    "causal": ([2, 2], 70, 70, 32, 24, True, True, None, 3, True, 4, 4),
    "causal-last-block": ([3], 70, 70, 48, 22, True, True, None, 3, True, 4, 8),
    "causal-masked": ([2, 1], 70, 70, 16, 24, False, True, None, 2, True, 2, 8),
    "bidirectional": ([4], 50, 50, 16, 20, False, False, None, 4, True, 8, 2),
    "sinks": ([2, 2], 40, 40, 8, 16, True, True, [-np.inf, 0.5, 3.0, -1.0], 1, False, 8, 8),
    "cross": ([2], 12, 300, 0, 12, False, False, None, 3, False, 1, 2),
    "cross-tall": ([2], 40, 12, 8, 24, False, False, None, 3, False, 8, 1),  # rows past the last key
    "no-window": ([1], 30, 30, 0, 30, True, True, None, 0, True, 1, 1),
}


@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("case", SCORE_CASES)
def test_head_rows_numpy_equals_numba(numba_kernels, case, pool):
    sizes, n, n_keys, r0, m, layer_causal, causal, sinks, window, repeats, fr, fc = SCORE_CASES[case]
    rng = np.random.default_rng(len(case))
    c = r0 + m if causal else n_keys
    groups, h0 = [], 0
    for g in sizes:
        tile = (rng.standard_normal((g, m, c)) * 3).astype(np.float32)
        if not layer_causal and causal:  # a padding mask in the scores: the first keys, and the future
            tile[:, :, :3] = np.finfo(np.float32).min
            tile[np.broadcast_to(np.arange(c) > np.arange(r0, r0 + m)[:, None], tile.shape)] = -np.inf
        groups.append((h0, tile))
        h0 += g
    sinks = np.full(h0, -np.inf, np.float32) if sinks is None else np.array(sinks, np.float32)
    ids = tuple(rng.integers(0, 5, n).tolist()) if repeats else None
    kw = dict(layer_causal=layer_causal, causal=causal, sinks=sinks, window=window, ids=ids, fr=fr, fc=fc, pool=pool)
    want = score_block(numba_kernels, groups, r0, n, n_keys, **kw)
    copies = [(h, t.copy()) for h, t in groups]
    got = score_block(_kernels_numpy, copies, r0, n, n_keys, **kw)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(groups, copies))  # the scores are left alone
    same_outputs(got, want, case)
    rows = got["stats"][:, r0:r0 + m]
    assert np.all(rows[..., K.TOTAL] <= 1 + 1e-6) and np.all(rows[..., K.PEAK] > 0)
    if sinks[0] == -np.inf and not (causal and not layer_causal):  # every softmaxed key is counted
        close(rows[0, :, K.TOTAL], 1.0, "total", atol=1e-6)


def prob_block(kernels, tile, r0, n, *, causal, window, ids, fr, fc):
    heads, m, c = tile.shape
    cells = np.random.default_rng(1).random((heads + 1, math.ceil(n / fr), math.ceil(c / fc)), np.float32) * 0.05
    out = {"stats": np.zeros((heads, n, K.NSTATS)), "colsum": np.zeros((kernels.num_threads(), heads, c), tile.dtype),
           "mean": np.zeros((m, c), np.float32), "tiles": cells[:heads].copy(), "mean_tile": cells[heads].copy()}
    pair_ptr, pair_key, _ = _pairs(ids, n)
    kernels.prob_rows(tile, r0, causal, tile.dtype.type(LO), tile.dtype.type(HI), window, pair_ptr, pair_key, fr, fc,
                      True, out["stats"], out["colsum"], out["mean"], tile.dtype.type(1 / heads), out["tiles"],
                      out["mean_tile"])
    out["colsum"] = out["colsum"].sum(0)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [True, False])
def test_prob_rows_numpy_equals_numba(numba_kernels, dtype, causal):
    n, r0, m = 45, 12, 21
    c = r0 + m if causal else n
    p = ref_attention(np.random.default_rng(5), 1, 3, n, causal)[0, :, r0:r0 + m, :c].astype(dtype)
    p[1, :, 4] = 0.0  # exact zeros: no log of them in the entropy
    kw = dict(causal=causal, window=3, ids=tuple(np.arange(n) % 4), fr=4, fc=2)
    same_outputs(prob_block(_kernels_numpy, p, r0, n, **kw), prob_block(numba_kernels, p, r0, n, **kw),
                 f"prob_rows {np.dtype(dtype).name}")


@pytest.mark.parametrize("fr, fc", [(1, 1), (4, 8), (8, 2), (64, 64)])
def test_pool2d_numpy_equals_numba(numba_kernels, fr, fc):
    src = np.random.default_rng(fr * fc).standard_normal((3, 37, 53)).astype(np.float32)  # negatives: cells start at 0
    got, want = _kernels_numpy.pool2d(src, fr, fc), numba_kernels.pool2d(src, fr, fc)
    assert got.shape == want.shape == (3, math.ceil(37 / fr), math.ceil(53 / fc)) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_part_proximity_numpy_equals_numba(numba_kernels, monkeypatch):
    rng = np.random.default_rng(6)
    whole = rng.standard_normal((5, 16)).astype(np.float32)
    alpha = rng.random((3, 5, 20)).astype(np.float32) * (rng.random((3, 5, 20)) > 0.3)
    outputs = rng.standard_normal((3, 20, 16)).astype(np.float32)
    want = np.full((3, 5, 12), -1.0, np.float32)
    numba_kernels.part_proximity(whole, alpha, outputs, want)
    monkeypatch.setattr(_kernels_numpy, "PART_ELEMENTS", 12 * 16 * 2)  # two rows a step: a ragged last step
    got = np.full_like(want, -1.0)
    _kernels_numpy.part_proximity(whole, alpha, outputs, got)
    assert np.all(want >= 0) and (want == 0).any() and (want > 0).any()
    close(got, want, "proximity", atol=1e-5)


# ----------------------------------------------------------------------------- the whole engine


def with_sinks(cap: Capture) -> Capture:
    """gpt-oss style: one learned sink logit per head joins each row's softmax."""
    gen = torch.Generator().manual_seed(0)
    records = [QKRecord(r.name, r.query, r.key, r.mask, r.causal, r.scaling, r.softcap,
                        torch.randn(r.query.shape[0], generator=gen) * 2) for r in cap._records]
    return Capture(records=records, masks=cap._masks, token_ids=cap.token_ids, tokens=cap.tokens,
                   offsets=cap.offsets, special=cap.special, generated=cap.generated, partial=cap.partial,
                   text=cap.text, model_name="sinks", is_causal=True, num_heads=cap.num_heads)


SOURCES = ["llama", "llama-padded", "bert", "sinks", "cross", "array-causal", "array-float64"]


@pytest.fixture(scope="module", params=SOURCES)
def source(request, byte_tokenizer):
    """(source, dense [layer, head, query, key] float64, token ids)."""
    kind = request.param
    if kind.startswith("array"):
        dense = ref_attention(np.random.default_rng(3), 2, 3, 37, kind == "array-causal")
        ids = np.random.default_rng(4).integers(0, 6, 37)
        return (dense if kind == "array-float64" else dense.astype(np.float32)), dense, ids
    if kind == "cross":
        cap = make_capture([f"t{i}" for i in range(12)], causal=False, key_tokens=[f"s{i}" for i in range(40)])
        return cap, cap.patterns().astype(np.float64), None
    ids = byte_tokenizer(LONG_TEXT[:120]).input_ids
    mask = None
    if kind == "llama-padded":
        ids, mask = [2] * 3 + ids, [0] * 3 + [1] * len(ids)
    cap = attnwidget.capture(tiny_model("bert" if kind == "bert" else "llama"), byte_tokenizer, ids,
                             attention_mask=mask)
    if kind == "sinks":
        cap = with_sinks(cap)
    return cap, cap.patterns().astype(np.float64), cap.token_ids


@pytest.fixture
def small_tiles(monkeypatch):
    monkeypatch.setattr(E, "TILE_ELEMENTS", 700)  # a few rows per block, blocks that end mid pooling row
    monkeypatch.setattr(E, "TILE_SIDE", 16)  # pooled tiles, per axis for the rectangle (fr != fc)
    monkeypatch.setattr(E, "THUMB_SIZE", 6)


def summaries(obj, backend, ids):
    with K.use_backend(backend) as kernels:
        assert kernels.name == backend
        engine = E.Engine(obj)
        opts = E.PassOptions(token_ids=None if ids is None else tuple(int(i) for i in ids))
        return [engine.summarize(layer, opts, keep_means="float32") for layer in range(engine.num_layers)]


def kept_mean(res, n, n_keys):
    kept = np.zeros((n, n_keys))
    for r0, r1, block in res.means:
        kept[r0:r1, :block.shape[1]] = block
    return kept


def test_every_summary_field_equals_numba(numba_kernels, source, small_tiles):
    obj, dense, ids = source
    got, want = summaries(obj, "numpy", ids), summaries(obj, "numba", ids)
    n, n_keys = dense.shape[-2:]
    for layer, (a, b) in enumerate(zip(got, want)):
        for field in ("metrics", "roles"):
            for name, values in getattr(b, field).items():
                close(getattr(a, field)[name], values, f"layer {layer} {name}", rtol=1e-5, atol=1e-6)
        for field in ("tiles", "mean_tile", "colsum_mean", "last_mean"):
            close(getattr(a, field), getattr(b, field), f"layer {layer} {field}", rtol=2e-3, atol=1e-6)  # float16
        assert np.abs(a.thumbs.astype(int) - b.thumbs).max() <= 1 and a.thumbs.shape == b.thumbs.shape
        assert [(r0, r1) for r0, r1, _ in a.means] == [(r0, r1) for r0, r1, _ in b.means]
        close(kept_mean(a, n, n_keys), kept_mean(b, n, n_keys), f"layer {layer} kept mean")


def test_numpy_backend_equals_the_dense_reference(source, small_tiles):
    obj, dense, ids = source
    results = summaries(obj, "numpy", ids)
    causal = E.Engine(obj).is_causal
    n, n_keys = dense.shape[-2:]
    for layer, res in enumerate(results):
        mean = dense[layer].mean(0)
        close(kept_mean(res, n, n_keys), mean, "kept mean", atol=1e-6)
        close(res.last_mean, mean[-1], "last row", atol=1e-6)
        fr, fc = ref.tile_factor(n, 16), ref.tile_factor(n_keys, 16)
        for h in range(dense.shape[1]):  # max_pool pools square cells: check the rectangle per axis
            pooled = np.maximum.reduceat(np.maximum.reduceat(dense[layer, h], np.arange(0, n, fr), 0),
                                         np.arange(0, n_keys, fc), 1)
            close(res.tiles[h], pooled, "tiles", rtol=1e-3, atol=1e-6)
    if n != n_keys:
        assert all(np.isnan(res.metrics["mean_distance"]).all() for res in results)  # positional: NaN
        return
    for name, values in ref.all_metrics(dense, causal).items():
        if name not in ("sparsity", "coverage"):  # a weight within rounding of 0.01 may count either way
            close(np.stack([r.metrics[name] for r in results]), values, name, rtol=1e-6, atol=1e-6)
    if getattr(obj, "_records", None) and obj._records[0].sinks is not None:
        return  # the reference has no sink logit in its rows' totals: the roles below assume rows sum to 1
    for name, values in ref.all_roles(dense, causal, ids).items():
        close(np.stack([r.roles[name] for r in results]), values, name, rtol=1e-6, atol=1e-6)


def test_metrics_roles_and_rollout_of_a_capture_under_numpy(byte_tokenizer):
    """What the widget asks of a Capture (its shared summary: metrics, head roles, rollout rows from
    the kept head means) under the forced numpy backend, against the dense reference."""
    cap = attnwidget.capture(tiny_model("llama"), byte_tokenizer, LONG_TEXT[:100])
    dense = cap.patterns().astype(np.float64)
    cap.__dict__.pop("_summaries", None)
    with K.use_backend("numpy"):
        metrics = attnwidget.compute_metrics(cap)
        roles = attnwidget.head_roles(cap)
        targets = [0, 5, cap.num_tokens - 1]
        rows = ro.rollout_rows(cap, targets)
    cap.__dict__.pop("_summaries", None)
    for name in ("entropy", "max_weight", "sink_score", "mean_distance"):
        close(metrics[name], ref.all_metrics(dense, True)[name], name, rtol=1e-6, atol=1e-6)
    want_roles = ref.all_roles(dense, True, cap.token_ids)
    for name in ("previous", "local", "duplicate", "induction"):
        close(roles.scores(name), want_roles[name], name, rtol=1e-6, atol=1e-6)
    close(rows, np.stack([ref.rollout_row(dense, t) for t in targets]), "rollout rows", atol=1e-6)


def test_backend_choice(monkeypatch, numba_kernels):
    monkeypatch.delenv(K.ENV, raising=False)
    monkeypatch.setattr(K, "_chosen", None)  # chosen again on the next call
    assert K.backend() is numba_kernels  # numba is installed here: the default
    with K.use_backend("numpy") as forced:
        assert K.backend() is forced is _kernels_numpy and E.warm_up() == 0.0
        with K.use_backend("numba"):
            assert K.backend() is numba_kernels
        assert K.backend() is forced
    assert K.backend() is numba_kernels
    monkeypatch.setattr(K, "_chosen", None)  # chosen again, from the environment
    monkeypatch.setenv(K.ENV, "numpy")
    assert K.backend() is _kernels_numpy
    monkeypatch.setattr(K, "_chosen", None)
    monkeypatch.setenv(K.ENV, "fortran")
    with pytest.raises(ValueError, match="unknown kernel backend 'fortran'"):
        K.backend()


# ----------------------------------------------------------------------------- the default install

HIDE_NUMBA = """
import importlib.abc, sys

class HideNumba(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("numba", "llvmlite"):
            raise ImportError(f"{name} is hidden (a default install)")

sys.meta_path.insert(0, HideNumba())
"""


def run_python(code: str, *args: str, hide_numba: bool = False) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter with ``-X importtime``, the backend left to the default choice;
    ``hide_numba``: as if numba and llvmlite were not installed."""
    env = {k: v for k, v in os.environ.items() if k != K.ENV}
    code = (HIDE_NUMBA if hide_numba else "") + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def errors(done: subprocess.CompletedProcess) -> str:
    """The subprocess's stderr without the import-time report."""
    return "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))[-3000:]


def loaded(stderr: str) -> list[str]:
    """The numba / llvmlite modules named in ``-X importtime``'s report."""
    names = [line.rpartition("|")[2].strip() for line in stderr.splitlines() if line.startswith("import time:")]
    return [name for name in names if name.partition(".")[0] in ("numba", "llvmlite")]


def test_import_attnwidget_does_not_import_numba():
    done = run_python("""
        import sys
        import attnwidget
        print(sorted(m for m in sys.modules if m.partition(".")[0] in ("numba", "llvmlite")))
    """)
    assert done.returncode == 0, errors(done)
    assert done.stdout.strip() == "[]"
    assert "import time:" in done.stderr and loaded(done.stderr) == []


def test_without_numba_the_engine_falls_back_and_flow_refuses(tmp_path):
    out = tmp_path / "results.npz"
    np.savez(out, attn=ref_attention(np.random.default_rng(9), 2, 2, 19, True).astype(np.float32))
    done = run_python("""
        import json, sys
        import numpy as np
        import attnwidget
        from attnwidget import _engine, _kernels
        from attnwidget.errors import MissingExtraError

        attn = np.load(sys.argv[1])["attn"]
        result = {"backend": _kernels.backend().name, "warm_up": _engine.warm_up()}
        engine = _engine.Engine(attn)
        summary = engine.summarize(1, _engine.PassOptions(token_ids=tuple(range(attn.shape[-1]))))
        proximity = np.zeros((1, 2, 3), np.float32)
        _kernels.backend().part_proximity(np.ones((2, 4), np.float32), np.full((1, 2, 3), 0.5, np.float32),
                                          np.ones((1, 3, 4), np.float32), proximity)
        try:
            attnwidget.attention_flow(attn)
        except MissingExtraError as error:
            result["refusal"] = str(error)
            result["is_import_error"] = isinstance(error, ImportError)
        try:
            _kernels.load("numba")
        except MissingExtraError as error:
            result["forced"] = str(error)
        result["numba_loaded"] = sorted(m for m in sys.modules if m.partition(".")[0] in ("numba", "llvmlite"))
        np.savez(sys.argv[1], attn=attn, proximity=proximity, **summary.metrics)
        print(json.dumps(result))
    """, str(out), hide_numba=True)
    assert done.returncode == 0, errors(done)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "numpy" and result["warm_up"] == 0.0 and result["numba_loaded"] == []
    assert result["is_import_error"] and PIP in result["refusal"] and "attention flow" in result["refusal"]
    assert PIP in result["forced"]
    saved = np.load(out)
    np.testing.assert_allclose(saved["proximity"], 2.0)  # ||y|| = 4, each part is 0.5 a dimension
    want = ref.all_metrics(saved["attn"].astype(np.float64), True)
    for name in ("entropy", "max_weight", "mean_distance", "sink_score"):
        close(saved[name], want[name][1], name, rtol=1e-5, atol=1e-6)


def test_the_widget_reports_the_flow_refusal(monkeypatch):
    """compute_flow without numba: the refusal is raised and shown in the status line; the text view
    says what to install instead of suggesting compute_flow."""
    from attnwidget.widget import AttentionWidget

    cap = make_capture([f"w{i}" for i in range(9)], causal=True, layers=2, heads=2)
    widget = AttentionWidget(cap, background=False)
    try:
        monkeypatch.setitem(sys.modules, "numba", None)  # import numba now fails, as without the extra
        monkeypatch.delitem(sys.modules, "attnwidget._flow", raising=False)
        with pytest.raises(MissingExtraError, match=r"attnwidget\[flow\]"):
            widget.compute_flow(4)
        assert "compute_flow" in widget.error and PIP in widget.error
        widget.text_source = "flow"
        assert PIP in widget._text_values(4)[1]
    finally:
        widget.close()
