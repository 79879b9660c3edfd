# %% [markdown]
# # Report and quality score
#
# `attention_report` gathers everything in one place:
#
# - a summary of the metrics (means over layers and heads);
# - a table for each layer, including how many heads take each role;
# - highlighted heads;
# - recommendations, each with its threshold and the measured value.
#
# The result is plain data (`to_dict()`). `print` shows it as a text table.

# %%
import attnwidget

model, tokenizer = attnwidget.load_model("smollm2")
cap = attnwidget.capture(model, tokenizer,
                         "Instruction: answer in one word. Context: The cat sat on the mat. "
                         "Question: Where did the cat sit? Answer:")
report = attnwidget.attention_report(cap)
print(report)

# %% [markdown]
# ## Quality score
#
# The score follows the article this project grew from, for each layer:
#
# - +0.3 when the entropy is between 1 and 3 nats;
# - +0.3 when the sparsity is between 0.3 and 0.7;
# - +0.4 x locality.
#
# It is a heuristic that describes attention patterns. It is not a measure of how good the model is.
# Give an expected pattern and the score also includes a real similarity (1 minus the Jensen-Shannon
# divergence) between each head and that pattern.

# %%
plain = attnwidget.quality_score(cap)
expected = attnwidget.quality_score(cap, expected="previous")
print(f"overall {plain.overall:.3f}; with a previous-token expectation {expected.overall:.3f}")
print("per layer:", " ".join(f"{v:.2f}" for v in plain.by_layer[:10]), "...")
