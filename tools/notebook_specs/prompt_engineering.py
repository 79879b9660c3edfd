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
print(attnwidget.compare_templates(model, tokenizer, templates))
