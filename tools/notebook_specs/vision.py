# %% [markdown]
# # Vision transformers: attention over image patches
#
# A vision transformer (ViT, DeiT, BEiT, DINOv2, the CLIP and SigLIP image towers) cuts the image into
# square patches and treats each as a token, usually after a `[CLS]` token that summarises the image.
# `attnwidget.capture(model, image_processor, image)` takes the model's image processor instead of a
# tokenizer and an image (a PIL image, a file path or an array). The tokens are named `[CLS]` and
# `patch r,c`; the capture keeps the preprocessed picture and the patch grid, so the widget can lay any
# token's attention over the image.
#
# **The weights here are random.** No trained vision transformer installs offline on this machine, so
# this tutorial builds a ViT-B-shaped model (224 x 224 pixels, 16 x 16 patches: 196 patches + `[CLS]`)
# with small random layers. The maps show the mechanics, not what a trained ViT looks at: load
# `google/vit-base-patch16-224` or DINOv2 with `from_pretrained` where you have the weights, and every
# cell below works unchanged. The photograph ships with scikit-image.

# %%
import numpy as np
import torch
import transformers
from skimage import data
import attnwidget

config = transformers.ViTConfig(image_size=224, patch_size=16, hidden_size=64, intermediate_size=128,
                                num_hidden_layers=4, num_attention_heads=4)
torch.manual_seed(0)
model = transformers.ViTModel(config).eval()  # random weights, loaded the default way (sdpa)
processor = transformers.ViTImageProcessorPil(size={"height": 224, "width": 224})

photo = data.chelsea()  # a cat, 300 x 451 pixels, bundled with scikit-image
cap = attnwidget.capture(model, processor, photo)
print(cap)
print("tokens:", cap.tokens[:3], "...", cap.tokens[-1])
print("picture:", cap.image.shape, cap.image.dtype, "patch grid:", cap.patch_grid, "first patch:", cap.patch_start)

# %% [markdown]
# ## Exact, under the default loading
#
# As for language models, the model runs with fused attention and attnwidget recomputes the weights
# from the recorded queries and keys. Compared with the model's eager attention:

# %%
from attnwidget._vision import prepare

eager = transformers.ViTModel(config).eval()
eager.load_state_dict(model.state_dict())
eager.set_attn_implementation("eager")
with torch.no_grad():
    reference = eager(pixel_values=prepare(processor, photo).pixel_values, output_attentions=True).attentions
diff = max(float(np.abs(cap.head_patterns(l) - reference[l][0].numpy()).max()) for l in range(cap.num_layers))
print(f"max difference from eager: {diff:.1e}")

# %% [markdown]
# ## What the [CLS] token reads
#
# The `[CLS]` row of a layer, without its own entry, laid out on the patch grid:

# %%
rows, cols = cap.patch_grid
cls_row = cap.pattern(cap.num_layers - 1, rows=[0])[0]
grid = cls_row[cap.patch_start:].reshape(rows, cols)
print(f"[CLS] -> itself {cls_row[0]:.3f}; patches: min {grid.min():.4f}, max {grid.max():.4f}")
r, c = np.unravel_index(grid.argmax(), grid.shape)
print("most attended patch:", cap.tokens[cap.patch_start + r * cols + c])

# %% [markdown]
# ## CLS rollout, the vision recipe
#
# Rollout follows attention through every layer (Abnar & Zuidema 2020). For vision transformers the
# usual recipe fuses the heads with their **max** (or min) rather than the mean, and **discards** the
# lowest weights of each layer (e.g. 90%) before mixing in the residual: this keeps the few strong paths
# that would otherwise be washed out by hundreds of small ones.

# %%
plain = attnwidget.rollout_row(cap, 0)
recipe = attnwidget.rollout_row(cap, 0, head_fusion="max", discard_ratio=0.9)
print(recipe.reason)
for name, values in (("mean of heads", plain.values), ("max, 90% discarded", recipe.values)):
    patches = values[cap.patch_start:].reshape(rows, cols)
    top = tuple(int(i) for i in np.unravel_index(patches.argmax(), patches.shape))
    print(f"{name:20s} top patch {top}, "
          f"share of the top 10 patches {np.sort(patches.ravel())[-10:].sum() / patches.sum():.2f}")

# %% [markdown]
# ## In the explorer: the image view
#
# A vision capture opens on the image view: the picture, with the attention (or rollout, or flow) of the
# hovered or selected token over the patches, and a colour bar. Hovering a patch selects that token in
# every view (the heatmap, the token lines, the grid); the arrow keys move between patches and Enter
# selects one. From Python, set `hovered_token` or `selected_tokens`:

# %%
explorer = attnwidget.show(cap)
widget = explorer.widget
widget.selected_tokens = [widget.patch_token(7, 7)]  # the patch in row 7, column 7
print(widget.view, "| focused:", cap.tokens[widget.selected_tokens[0]], "|", widget.image_data["note"])
explorer

# %%
widget.text_source = "rollout"  # the overlay now shows the rollout row of the focused token
widget.selected_tokens = [0]
widget.wait()
print(widget.image_data["note"])
