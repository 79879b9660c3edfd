# %% [markdown]
# # attnwidget quickstart
#
# One call opens an explorer on a real language model: SmolLM2-135M-Instruct, installed offline from a
# PyPI wheel. On the left there's a layer x head grid; click a cell to pick a head, or click the last
# column for the mean over heads. Beside it (under it when the notebook is narrow), one of five views:
# a heatmap, the text, token lines, a graph or a rollout strip. On the right there are bqplot panels
# with one metric per head and per layer (under the widget when the output is narrower than about
# 1000 px); clicking a cell there selects the head too. Hover any token and it's highlighted in every
# view. The grid and the heatmap also work from the keyboard: Tab to them, then use the arrow keys.

# %%
import attnwidget

model, tokenizer = attnwidget.load_model("smollm2")
explorer = attnwidget.show(model, tokenizer, "The cat sat on the mat because it was tired.")
explorer

# %% [markdown]
# ## The selection is readable, and settable, from Python
#
# Whatever you hover or click in the page lands in the widget's traits: `layer`, `head` (`None` means
# the mean over heads), `hovered_token`, `selected_tokens`, `view` and `threshold`. If you set them from
# Python, the page updates.

# %%
w = explorer.widget
print("layer", w.layer, "head", w.head, "hovered", w.hovered_token, "selected", w.selected_tokens)

# %%
w.layer, w.head = 14, 3
w.selected_tokens = [7]
w.status

# %% [markdown]
# ## The numbers behind the pictures
#
# `explorer.capture` holds each layer's queries and keys. `pattern(layer, head)` recomputes the exact
# attention weights on demand, and `head=None` averages the heads. Which tokens does " it" attend to
# most in layer 10?

# %%
import numpy as np

cap = explorer.capture
print(cap)
print(cap.tokens)
row = cap.pattern(10)[cap.tokens.index(" it")]
for k in np.argsort(row)[::-1][:4]:
    print(f"{cap.tokens[k]!r:>10}  {row[k]:.3f}")
