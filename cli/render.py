"""``miex render``: one face photo through any registered renderer, input beside output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .main import CommonOptions, common_options, console, parse_key_values


@click.command("render")
@click.argument("face", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--au", "aus", multiple=True, metavar="AU=VALUE",
              help="Target AU intensity on the OpenFace 0-5 scale, e.g. --au AU12=2 (repeatable; others are 0).")
@click.option("--sweep", metavar="AU", default=None,
              help="Render a strip with this AU going 0 -> 5 (the other --au values held).")
@click.option("--steps", type=click.IntRange(min=2), default=6, show_default=True, help="Frames of a --sweep.")
@click.option("--renderer", default=None, help="Renderer name (default: ganimation with --checkpoint, else warp).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Generator weights for --renderer ganimation (replicate or official GANimation file).")
@click.option("-O", "--renderer-option", "renderer_options", multiple=True, metavar="KEY=VALUE",
              help="Extra renderer option, e.g. -O compat=official -O saturate_mask=true (repeatable).")
@click.option("--image-size", type=int, default=None, help="Frame side in pixels (default: the renderer's, 128).")
@click.option("--no-detect", is_flag=True, help="The photo is already a face crop: resize it, do not detect.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output PNG; a JSON record with the same stem is written beside it.")
@common_options
def render(common: CommonOptions, face: Path, aus: tuple[str, ...], sweep: str | None, steps: int,
           renderer: str | None, checkpoint: Path | None, renderer_options: tuple[str, ...], image_size: int | None,
           no_detect: bool, out: Path) -> None:
    """Render FACE with target AUs and save the input beside the result.

    \b
    Examples:
      miex render face.jpg --au AU12=2 --au AU06=1 -o smile.png
      miex render face.jpg --renderer ganimation --checkpoint 30_net_gen.pth --au AU12=3 -o out.png
      miex render face.jpg --sweep AU12 -o au12_sweep.png
    """
    from miex_gen.errors import ConfigError
    from miex_gen.faces import load_image
    from miex_gen.render import get_renderer
    from miex_gen.render.preview import parse_au_assignments, render_preview, save_preview, sweep_aus

    options: dict[str, Any] = {"device": common.device, **parse_key_values(renderer_options, "-O")}
    if checkpoint is not None:
        options["checkpoint"] = checkpoint
    if image_size is not None:
        options["input_size"] = image_size
    name = renderer or ("ganimation" if checkpoint is not None else "warp")
    try:
        engine = get_renderer(name, **options)
    except TypeError as exc:  # an option this renderer does not take
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ConfigError(f"renderer {name!r} does not accept these options ({exc})",
                          hint="check the -O / --checkpoint / --image-size flags against docs/RENDERERS.md") from None

    base = parse_au_assignments(aus)
    labels = None
    targets = base[None]
    if sweep is not None:
        targets, labels = sweep_aus(base, sweep, steps)
    result = render_preview(engine, load_image(face), targets, labels=labels, detect=not no_detect)
    png, record = save_preview(result, out, extra={"input": str(face)})
    if not common.quiet:
        console.print(f"wrote {png} ({len(result.labels)} frame(s) by {engine.name}; record {record.name})")
    else:
        console.print(str(png))


COMMANDS = [render]
