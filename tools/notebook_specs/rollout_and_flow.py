# %% [markdown]
# # Rollout and attention flow: what does the output draw on?
#
# One layer's attention shows only one step. Attention rollout (Abnar & Zuidema, 2020) follows
# attention through every layer. At each layer it adds the residual connection (`0.5 * I + 0.5 * A`),
# renormalises the rows, and multiplies the layers together. Attention flow treats the same matrices as
# capacities in a layered graph and computes an exact maximum flow. attnwidget solves it in seconds,
# not hours.
#
# For a causal model (a decoder), the natural row to read is the **last** token, because that is where
# the next token is predicted. For an encoder it is the **first** token (`[CLS]`).

# %%
import numpy as np
import attnwidget

model, tokenizer = attnwidget.load_model("smollm2")
cap = attnwidget.capture(model, tokenizer, "The keys to the cabinet on the left are")

def top(values, tokens, k=5):
    order = np.argsort(values)[::-1][:k]
    return ", ".join(f"{tokens[i]!r} {values[i]:.3g}" for i in order)

roll = attnwidget.rollout_row(cap)
print(roll.reason)
print("rollout:", top(roll.values, cap.tokens))
flow = attnwidget.attention_flow_row(cap)
print("flow:   ", top(flow.values, cap.tokens))

# %% [markdown]
# In a 30-layer decoder, rollout piles almost all of its mass on the first token. Most heads park their
# attention there (an "attention sink"), and multiplying 30 such matrices together amplifies that.
# What's left is tiny but still ordered. Flow isn't a product: each input token gets the most attention
# that can reach it through any path, so it ranks the content words more readably. Starting rollout at a
# later layer (`start_layer`) shows which tokens the top layers themselves mix.

# %%
print("rollout without the first token:", top(roll.values[1:], cap.tokens[1:], 4))
late = attnwidget.rollout_row(cap, start_layer=20)
print("rollout of layers 20-29:        ", top(late.values, cap.tokens, 5))

# %% [markdown]
# ## An encoder: MiniLM
#
# For a BERT-style encoder, attention is bidirectional and the row we read is `[CLS]`.

# %%
encoder, enc_tokenizer = attnwidget.load_model("minilm")
enc = attnwidget.capture(encoder, enc_tokenizer, "The keys to the cabinet on the left are missing.")
roll = attnwidget.rollout_row(enc)
print(roll.reason)
print("rollout:", top(roll.values, enc.tokens))
print("flow:   ", top(attnwidget.attention_flow_row(enc).values, enc.tokens))

# %% [markdown]
# ## In the explorer
#
# The rollout view shows the rollout row of whichever token you hover or select. `compute_flow()` adds
# the exact flow for that row as a second series.

# %%
explorer = attnwidget.show(cap, view="rollout")
flow_values = explorer.widget.compute_flow()
explorer
