# %% [markdown]
# # Long prompts: reading 2,000 tokens of attention
#
# A heatmap of 2,000 x 2,000 weights is mostly empty pixels, and a line per pair of tokens is a wall
# of ink. This tutorial reads a long prompt the way you read text: in order, each token coloured by how
# much one chosen token attends to it. It uses
#
# - the **text view**: the prompt as a paragraph, coloured by the attention (or rollout) from the
#   hovered or selected token, with a minimap of where the weight sits;
# - **rollout rows** for the tokens you click, computed from the patterns the widget keeps;
# - the **log colour scale**, because in a long prompt the first token takes nearly all the weight.
#
# The document is a shipping log of 110 entries with one question at the end, about a single entry
# near the start (the only one from Reykjavik): a needle in a haystack.

# %%
import numpy as np
import attnwidget

rng = np.random.default_rng(7)
people = ["courier", "captain", "merchant", "clerk", "pilot", "trader", "porter", "agent"]
cities = ["Lisbon", "Genoa", "Bergen", "Riga", "Porto", "Cadiz", "Hamburg", "Danzig", "Antwerp", "Bristol"]
goods = ["tea", "salt", "wool", "timber", "copper", "rice", "cloth", "wine", "amber", "iron"]
lines = []
for i in range(110):
    city = "Reykjavik" if i == 12 else cities[rng.integers(len(cities))]
    lines.append(f"Entry {i + 1}: the {people[rng.integers(len(people))]} from {city} shipped "
                 f"{rng.integers(10, 99)} crates of {goods[rng.integers(len(goods))]}.")
needle = lines[12]
question = "Question: how many crates were shipped from Reykjavik? Answer: the log says that"
text = "\n".join(lines) + "\n" + question

model, tokenizer = attnwidget.load_model("smollm2")
cap = attnwidget.capture(model, tokenizer, text)
print(cap)
print("the needle:", needle)

# %% [markdown]
# ## Opening the explorer on a long prompt
#
# `show()` computes the layer it opens on and returns; the other 29 layers are passed over on a
# background thread while you look. The grid fills in as layers finish, the line under the views says
# how far it is ("layers 12/30, 3 s left"), and a selection never waits for it: an unfinished layer is
# computed when you choose it. `wait()` blocks until every layer is done (a script or a test wants
# that; you rarely do).
#
# `view="text"` opens the text view; `color_scale="log"` colours by the logarithm of the weight
# (four decades below the largest), shown in the view's colour bar.

# %%
explorer = attnwidget.show(cap, view="text", color_scale="log")
explorer.wait()
widget = explorer.widget
print("layers done:", widget.layers_done, "of", widget.num_layers)
explorer

# %% [markdown]
# ## Where does the last token look?
#
# The text view colours every token by the attention from the focused token: the one you hover, else
# the last one you clicked, else the last token of the prompt. Hover a token in the page to see its
# row; here we ask Python for the same numbers. In most heads of a small model the first token (the
# "attention sink") takes most of the weight, which is why a linear colour scale shows little else.

# %%
def top(values, k=6, skip_first=True):
    order = np.argsort(values)[::-1]
    order = [i for i in order if not (skip_first and i == 0)][:k]
    return ", ".join(f"{i}:{cap.tokens[i]!r} {values[i]:.2g}" for i in order)

last = cap.num_tokens - 1
row = cap.pattern(widget.layer, rows=[last])[0]  # the mean of the layer's heads, as the view shows it
print(f"layer {widget.layer}, mean of heads: first token {row[0]:.3f}, the rest {1 - row[0]:.3f}")
print("most attended after it:", top(row))

# %% [markdown]
# The sink hides the rest on a linear scale: only tokens above 1/255 of the largest weight get any colour
# at all. On the log scale, everything above 1/10,000 of it does.

# %%
print("tokens visible on a linear scale:", int((row >= row.max() / 255).sum()))
print("tokens visible on the log scale: ", int((row >= row.max() * 1e-4).sum()))

# %% [markdown]
# ## Which heads find the needle?
#
# The question names Reykjavik once more, 2,000 tokens after the entry that mentions it. Take the last
# piece of that word in the question as the focus, and measure, for every head, how much of its
# attention lands on the needle's tokens.

# %%
def tokens_of(start, length):
    """Indices of the tokens inside the characters start..start+length of the text."""
    return np.flatnonzero((cap.offsets[:, 0] >= start) & (cap.offsets[:, 1] <= start + length))

needle_tokens = tokens_of(cap.text.index(needle), len(needle))
asked = cap.text.rindex("Reykjavik")
focus = int(tokens_of(asked, len("Reykjavik"))[-1])
print(f"focus: token {focus} {cap.tokens[focus]!r}, {focus - needle_tokens[-1]} tokens after the needle")
on_needle = np.stack([cap.head_patterns(layer, rows=[focus])[:, 0, needle_tokens].sum(-1)
                      for layer in range(cap.num_layers)])  # [layer, head]
order = np.argsort(on_needle, axis=None)[::-1][:3]
roles = attnwidget.head_roles(cap)  # read from the statistics the background pass computed
for layer, head in zip(*np.unravel_index(order, on_needle.shape)):
    print(f"layer {layer:2d} head {head}: {on_needle[layer, head]:.2f} of its attention on the needle "
          f"(duplicate-token score {roles.duplicate[layer, head]:.2f})")

# %% [markdown]
# Show it in the page: select the focus token and the best head. The text view now colours the
# prompt by that head's attention from the question's "Reykjavik": scroll to the needle, or click the
# bright mark near the top of the minimap.

# %%
layer, head = (int(v) for v in np.unravel_index(order[0], on_needle.shape))
widget.layer, widget.head = layer, head
widget.selected_tokens = [focus]
row = cap.pattern(layer, head, rows=[focus])[0]
print("most attended:", top(row, 4))

# %% [markdown]
# ## Rollout rows
#
# One layer's attention is one step. Rollout follows the weights through all 30 layers. For a long
# prompt the widget does not build the whole 2,000 x 2,000 rollout: clicking a token computes its row
# on a worker thread, from the head-mean patterns the background pass kept, and shows it in the
# rollout view and, with `text_source="rollout"`, in the text view. The same row from Python:

# %%
rollout = attnwidget.rollout_rows(cap, [last])[0]
print(f"rollout of the last token: first token {rollout[0]:.3f}; the rest {1 - rollout[0]:.3f}")
print("most attended after it:", top(rollout))
widget.head = None
widget.text_source = "rollout"
widget.selected_tokens = [last]
widget.wait()  # the row is computed on the widget's worker thread
print("the text view now shows:", widget.text_data["note"])

# %% [markdown]
# Things to try in the page:
#
# - hover tokens in the text view: their attention rows colour the text; the minimap on the right shows
#   where the weight sits in the whole document, and a click on it scrolls there;
# - switch the scale to "linear, first token off scale": a linear scale whose maximum ignores the sink;
# - the graph view shows a window of 48 tokens around the focused one, with labels; for the whole prompt,
#   the text view is the one to use.
