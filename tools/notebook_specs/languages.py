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
