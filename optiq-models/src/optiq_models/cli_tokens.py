"""``optiq tokens encode`` and ``optiq tokens decode``: a thin shell over tokens.py. Imports only click at module
level; torch is imported when a command runs."""

from __future__ import annotations

import click


@click.group()
def tokens() -> None:
    """Motion as codebook tokens: encode clips with a tokenizer (arch vqvae) and decode tokens back into motion
    (optiq-models)."""


@tokens.command()
@click.option("--model", "model", required=True, type=click.Path(dir_okay=False), help="Tokenizer checkpoint (.pt).")
@click.option("--data", required=True, metavar="PATH", help="Dataset (or motion files) whose clips to encode.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Tokens file (.parquet).")
@click.option("--split", default="all", show_default=True, type=click.Choice(["all", "train", "val", "test"]),
              help="Clips: all clips of --data, or a side of the split saved with the model.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Feature cache (default ~/.cache/optiq).")
def encode(model, data, out, split, device, cache_dir) -> None:
    """Encode every clip into codebook ids: one Parquet row per clip (docs/models.md)."""
    from .tokens import encode as encode_tokens

    table = encode_tokens(model, data, out, split=split, cache_dir=cache_dir, device=device)
    row = table.slice(0, 1).to_pylist()[0]
    codes = sum(len(t) for t in table.column("tokens").to_pylist())
    click.echo(f"{out}: {table.num_rows} clips, {codes} codes of {row['num_quantizers']} id(s) "
               f"(codebook {row['codebook_size']}, {row['downsample']} frames per code), model {row['model']}")


@tokens.command()
@click.option("--model", "model", required=True, type=click.Path(dir_okay=False), help="Tokenizer checkpoint (.pt).")
@click.option("--tokens", "tokens_path", required=True, type=click.Path(dir_okay=False),
              help="Tokens file that optiq tokens encode wrote with this model.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="A dataset (.parquet, .h5) or, for one clip, a motion file (.bvh, .json, .fbx).")
@click.option("--device", default="cpu", show_default=True)
def decode(model, tokens_path, out, device) -> None:
    """Decode tokens into motion on the model's skeleton, each clip at its fps, start pose and frame count."""
    from .tokens import decode as decode_tokens

    clips = decode_tokens(model, tokens_path, out, device=device)
    click.echo(f"{out}: {len(clips)} clip(s), {sum(c.num_frames for c in clips)} frames")
