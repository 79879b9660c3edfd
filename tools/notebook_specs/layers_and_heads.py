# %% [markdown]
# # Layers and heads: metrics, roles and similar heads
#
# Every head gets numbers: entropy (how spread out its attention is), sparsity, locality, sink score
# (weight on the first token), and role scores (previous-token, induction, duplicate-token). Each of
# these is a `[layer, head]` array, computed one layer at a time from the capture.

# %%
import numpy as np
import attnwidget

model, tokenizer = attnwidget.load_model("smollm2")
text = ("Alice went to the market to buy apples. At the market, Alice met Bob, who was selling pears. "
        "Bob gave Alice a pear, and Alice gave Bob an apple.")
cap = attnwidget.capture(model, tokenizer, text)
metrics = attnwidget.compute_metrics(cap, ["entropy", "normalized_entropy", "sparsity", "locality", "sink_score"])
print(f"{'layer':>5} " + " ".join(f"{name:>18}" for name in metrics))
for layer in [0, 5, 10, 15, 20, 25, 29]:
    print(f"{layer:>5} " + " ".join(f"{values[layer].mean():>18.2f}" for values in metrics.values()))

# %% [markdown]
# ## Head roles
#
# Induction heads are found the standard way. Take a sequence of random tokens, repeat it, and on the
# second copy check whether a head attends to the token *after* the earlier occurrence of the current
# token. A trained model has such heads and a randomly initialised one does not (the test suite checks
# this on SmolLM2).

# %%
induction = attnwidget.induction_tokens(tokenizer, seq_len=40, seed=0)
rep = attnwidget.capture(model, tokenizer, induction.token_ids)
roles = attnwidget.head_roles(rep, period=induction.period, offset=induction.offset)
for role in ["induction", "previous", "duplicate", "sink"]:
    top = ", ".join(f"L{l}H{h} {s:.2f}" for l, h, s in roles.top(role, 3))
    print(f"{role:>10}: {top}")

# %% [markdown]
# The explorer can colour its grid by a role. Here the grid is coloured by induction score, and the
# bqplot map on the right shows the same scores; click its brightest cell.

# %%
explorer = attnwidget.show(rep, color_by="induction", metric="induction", layer=17, head=5)
explorer

# %% [markdown]
# ## Similar heads
#
# Two heads are close when their attention rows are alike: the distance is the mean Jensen-Shannon
# distance between rows. Hierarchical clustering then puts similar heads next to each other.

# %%
groups = attnwidget.similar_heads(cap, threshold=0.5)
print("clusters:", groups.labels.max())
sizes = np.bincount(groups.labels.ravel())[1:]
print("largest clusters:", sorted(sizes.tolist(), reverse=True)[:5])
print("first heads in dendrogram order:", [f"L{l}H{h}" for l, h in groups.order[:8]])
