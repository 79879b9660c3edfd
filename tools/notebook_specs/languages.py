# %% [markdown]
# # Languages: one sentence in three scripts
#
# SmolLM2 uses a byte-level vocabulary. A Chinese character often splits into two or three byte pieces,
# whose raw strings look like `çĮ«`. attnwidget maps the pieces back to bytes, so every token reads as
# real text. `compare_languages` goes further and merges the pieces of one character into a single unit.

# %%
import attnwidget

model, tokenizer = attnwidget.load_model("smollm2")
texts = {
    "English": "The cat is sitting on the mat and looking at the bird.",
    "Chinese": "猫坐在垫子上，看着那只鸟。",
    "Russian": "Кошка сидит на коврике и смотрит на птицу.",
}
result = attnwidget.compare_languages(model, tokenizer, texts, top_k=5)
print(result)

# %% [markdown]
# The tokens themselves are readable. Here are the Chinese ones: a character split into pieces reads as
# that character on each piece, and `partial` flags those pieces.

# %%
zh = attnwidget.capture(model, tokenizer, texts["Chinese"])
print(zh.tokens)
print(zh.partial.astype(int).tolist())

# %% [markdown]
# ## The languages side by side
#
# The result keeps its captures. As the last line of a cell it shows one panel per language, linked:
# each has its layer x head grid and its heatmap, every panel shows the same layer and head (click a
# grid cell in any panel, or use the menus), and the heatmaps share one colour scale with its bar. The
# sentences have different numbers of tokens, so there is no difference panel: the menu says so.
# Hover a row to read its token; the read-out under the panels names the same row in the other
# languages.

# %%
result

# %% [markdown]
# The view's selection is readable and settable from Python: `layer`, `head` (`None` for the mean of
# heads), `hovered_panel` and `hovered_token`, `selected_panel` and `selected_token`.

# %%
view = result.widget  # the view shown above
view.layer, view.head = 12, None
view.color_scale = "no_sink"
view.hover("Chinese", 3)  # as if the pointer were on row 3 of the Chinese panel
print(view.status)
print("hovered:", view.hovered_panel, view.hovered_token, repr(view.tokens[view.names.index("Chinese")][3]))
for name in view.names:
    row = view.heatmap(name)[-1]  # the last token's row, layer 12, mean of heads
    tokens = view.tokens[view.names.index(name)]
    top = row[1:-1].argmax() + 1  # the token it reads most, leaving out the first token and itself
    print(f"{name:>8}: {len(tokens)} tokens; the last token, {tokens[-1]!r}, reads {tokens[top]!r} most "
          f"({row[top]:.2f}; the first token {row[0]:.2f})")
