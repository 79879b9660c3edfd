# %% [markdown]
# # Attention of generated tokens
#
# `capture(..., generate=N)` first appends N greedily generated tokens. It then records attention over
# the whole sequence, so each generated token's attention to the prompt, and to the tokens generated
# before it, can be studied like any other. `cap.generated` flags the new tokens.

# %%
import numpy as np
import attnwidget

model, tokenizer = attnwidget.load_model("smollm2")
cap = attnwidget.capture(model, tokenizer, "The capital of France is", generate=6)
print(repr(cap.text))
print([t for t, g in zip(cap.tokens, cap.generated) if g])

# %% [markdown]
# Which earlier tokens does each generated token read? We leave out the first-token sink and average
# the heads of the middle layers.

# %%
layers = range(10, 20)
mean = np.mean([cap.pattern(l) for l in layers], axis=0)
for i in np.flatnonzero(cap.generated):
    row = mean[i, 1:i]
    best = np.argsort(row)[::-1][:3] + 1
    print(f"{cap.tokens[i]!r:>10} <- " + ", ".join(f"{cap.tokens[j]!r} {mean[i, j]:.2f}" for j in best))

# %% [markdown]
# In the explorer, the generated tokens are selected, so the rollout strip follows the last one.

# %%
explorer = attnwidget.show(cap, view="rollout", layer=15)
explorer.widget.selected_tokens = np.flatnonzero(cap.generated).tolist()
explorer
