"""Command line: ``python -m attnwidget export TEXT -o page.html [--model NAME] [--layer L] [--head H]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ._checks import check_head, check_layer
from .errors import ArgumentError

if TYPE_CHECKING:
    from .capture import Capture


def _head(value: str) -> int | str:
    if value.lower() == "mean":
        return "mean"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'mean', got {value!r}") from None


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} GB"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m attnwidget",
        description="attnwidget: see attention inside transformer models.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    export = commands.add_parser(
        "export", help="capture a text's attention and write one self-contained HTML page",
        description="Run a model on TEXT, capture every layer's attention and write one self-contained "
                    "HTML page (works offline; see docs/export.md for what is embedded).",
    )
    export.add_argument("text", metavar="TEXT", help="the input text ('-' reads it from standard input)")
    export.add_argument("-o", "--output", required=True, metavar="PAGE.html", help="the HTML file to write")
    export.add_argument("--model", default="smollm2", metavar="NAME",
                        help="'smollm2' (default), 'minilm', or a local path / hub id for from_pretrained")
    export.add_argument("--layer", type=int, default=None, help="initial layer (default: the middle layer)")
    export.add_argument("--head", type=_head, default=None, metavar="H|mean",
                        help="initial head, or 'mean' for the mean over heads (default)")
    export.add_argument("--view", choices=("heatmap", "lines", "graph", "rollout"), default=None,
                        help="initial view (default: heatmap)")
    export.add_argument("--title", default=None, help="page title (default: 'Attention in MODEL')")
    export.add_argument("-f", "--force", action="store_true", help="overwrite PAGE.html if it exists")
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """Everything that can be checked before the model loads (seconds) is checked first."""
    import os

    from .models import model_shape

    output = Path(args.output)
    folder = output.parent if str(output.parent) else Path(".")
    if output.suffix.lower() not in (".html", ".htm"):
        raise ArgumentError(f"the output must be an .html file; got {output}")
    if not folder.is_dir():
        raise FileNotFoundError(f"the output folder {folder} does not exist")
    if output.is_dir():
        raise IsADirectoryError(f"the output {output} is a folder; give a file name such as {output / 'page.html'}")
    if not os.access(folder, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise PermissionError(f"cannot write {output}: permission denied")
    if output.exists() and not args.force:
        raise FileExistsError(f"{output} exists; pass --force to overwrite it, or choose another name")
    shape = model_shape(args.model)
    if shape is None and args.model.lower() not in ("smollm2", "minilm"):
        from .models import looks_like_path

        if looks_like_path(args.model) and not Path(args.model).expanduser().is_dir():
            raise FileNotFoundError(f"no model folder at {args.model}; give 'smollm2', 'minilm', a folder "
                                    "written by save_pretrained or a hub id")
    if shape is not None:
        layers, heads = shape
        if args.layer is not None:
            check_layer(args.layer, layers, "--layer")
        if args.head not in (None, "mean"):
            check_head(args.head, heads, "--head")


def export_command(args: argparse.Namespace) -> int:
    from .capture import capture
    from .export import export_html
    from .models import load_model

    check_arguments(args)
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise ArgumentError("TEXT is empty; give the text to capture (or '-' to read it from standard input)")
    output = Path(args.output)
    start = time.perf_counter()
    model, tokenizer = load_model(args.model)
    cap = cast("Capture", capture(model, tokenizer, text))  # load_model loads no encoder-decoder
    path = export_html(cap, output, title=args.title, layer=args.layer, head=args.head, view=args.view)
    size = path.stat().st_size
    print(f"{path} ({_size(size)}, {cap.num_tokens} tokens, {cap.num_layers} layers x {cap.num_heads} heads, "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return export_command(args)
    except KeyboardInterrupt:
        print("attnwidget: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - one clear line instead of a traceback
        message = " ".join(str(error).split())  # one line, whatever the error's own layout
        print(f"attnwidget: error: {type(error).__name__}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
