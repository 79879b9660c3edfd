# %% [markdown]
# # Prompt engineering: which parts of a prompt get read?
#
# Give the parts of a prompt as character spans, or as substrings of the text. attnwidget maps them to
# tokens through the tokenizer's offsets. It then measures how much attention each part's tokens pay to
# every other part, and what share of the **last** token's attention each part gets. The last token is
# where the model predicts what comes next.

# %%
import attnwidget

model, tokenizer = attnwidget.load_model("smollm2")
text = ("Instruction: answer with one word. "
        "Context: The museum opens at nine and closes at five. "
        "Question: When does the museum close? Answer:")
cap = attnwidget.capture(model, tokenizer, text)
parts = attnwidget.prompt_parts(cap, {
    "instruction": "Instruction: answer with one word.",
    "context": "Context: The museum opens at nine and closes at five.",
    "question": "Question: When does the museum close? Answer:",
})
print(parts)

# %% [markdown]
# ## Chat prompts
#
# For a chat, `chat_parts` splits the rendered template into its system, user and assistant turns.

# %%
messages = [{"role": "user", "content": "When does the museum close? It opens at nine and closes at five."}]
chat = attnwidget.capture(model, tokenizer, messages)
print(attnwidget.prompt_parts(chat, attnwidget.chat_parts(chat)))

# %% [markdown]
# ## Comparing templates
#
# Here is the same question in three styles, with their statistics side by side.

# %%
templates = {
    "bare": "When does the museum close? It opens at nine and closes at five.",
    "labelled": "Context: It opens at nine and closes at five.\nQuestion: When does the museum close?\nAnswer:",
    "chat": messages,
}
comparison = attnwidget.compare_templates(model, tokenizer, templates)
print(comparison)

# %% [markdown]
# ## Side by side
#
# The result keeps its captures. As the last line of a cell it shows them as linked panels, one per
# template (`comparison.show()` makes another view of them). Each panel has its layer x head grid and
# its heatmap, and every panel shows the same layer and head: click a grid cell in any panel, or use
# the `layer` and `head` menus, and all of them follow. The heatmaps share one colour scale, whose bar
# is above the panels. Hover a row to see its token, and the same row in the other panels; click it to
# mark it. The grids and heatmaps take keyboard focus: in a grid the arrow keys pick the layer and the
# head; in a heatmap they move the row, Enter marks it and Escape clears it.
# With `print(comparison)` you get the table above instead.

# %%
comparison

# %% [markdown]
# The selection is readable, and settable, from Python, as in the single widget. Long prompts put most
# of their weight on the first token, which flattens a linear scale; `color_scale="no_sink"` takes
# the shared maximum without it.

# %%
view = comparison.widget  # the view shown above
view.layer, view.head = 20, None
view.color_scale = "no_sink"
print(view.status)
chat_tokens = view.tokens[view.names.index("chat")]
view.hover("chat", chat_tokens.index(" museum"))  # as if the pointer were on that row of the chat panel
print("hovered:", view.hovered_panel, view.hovered_token, repr(chat_tokens[view.hovered_token]))
for name in view.names:
    last_row = view.heatmap(name)[-1]  # what the last token reads, in this layer (mean of heads)
    print(f"{name:>9}: the last token's weight on the first token {last_row[0]:.2f}, "
          f"on the rest {last_row[1:].sum():.2f}")

# %% [markdown]
# ## What changes when one word changes
#
# Two prompts with as many tokens can be subtracted. `attnwidget.compare` takes any captures of one
# model; the difference panel shows the second minus the first, red where the second attends more and
# blue where it attends less, on a scale symmetric around zero. Here only the question's verb differs.

# %%
import numpy as np

close = attnwidget.capture(model, tokenizer, "The museum opens at nine and closes at five. When does it close?")
open_ = attnwidget.capture(model, tokenizer, "The museum opens at nine and closes at five. When does it open?")
pair = attnwidget.compare({"close": close, "open": open_}, layer=21)
pair

# %% [markdown]
# SmolLM2 is causal: a token reads only the tokens before it, so every row before the changed word is
# the same in both prompts, and its difference is exactly zero. The change starts at the verb and
# reaches the question mark after it.

# %%
diff = pair.difference_matrix()  # open minus close, [query, key]
print(pair.difference, diff.shape)
changed = np.flatnonzero(np.abs(diff).max(axis=1) > 0)
print("rows that differ:", [close.tokens[i] for i in changed], "vs", [open_.tokens[i] for i in changed])
last = diff[-1]
for k in np.argsort(-np.abs(last))[:3]:
    print(f"'?' -> {open_.tokens[k]!r:>10}: {last[k]:+.3f}")
