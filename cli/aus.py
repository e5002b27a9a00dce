"""``miex aus``: extract AUs with py-feat, build AU pools (z^MiE, z^MaE, z^exp), inspect pools."""

from __future__ import annotations

from pathlib import Path

import click

from cli.main import KindPath, common_options, console, err_console

MIE_KINDS = ("casme2", "samm", "smic", "megc2019", "mmew")
MAE_KINDS = ("ckplus", "oulu", "mmew-macro")
DATASET_KINDS = MIE_KINDS + MAE_KINDS


@click.group("aus")
def aus() -> None:
    """AU tables and AU pools (the z^MiE / z^MaE / z^exp sources of MiE-X)."""


@aus.command("extract")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: one CSV per clip.")
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Hugging Face cache tree holding py-feat's weights (default: py-feat's feat/resources).")
@click.option("--multitask-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="py-feat multitask checkpoint (else FEAT_MULTITASK_WEIGHTS or the cache tree).")
@click.option("--face-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--overwrite", is_flag=True, help="Re-extract clips whose CSV exists (default: resume).")
@common_options
def extract(inputs, out_dir, weights_dir, multitask_weights, face_threshold, batch_size, overwrite, common) -> None:
    """Run py-feat's Detectorv2 offline over INPUTS and write one AU CSV per clip.

    An INPUT is a folder of frames or a video (-> OUT/<name>.csv), or a dataset as KIND:ROOT
    (casme2, samm, smic, megc2019, ckplus, oulu, mmew, mmew-macro -> OUT/<dataset>/<subject>/<clip>.csv,
    the layout `miex aus pool build` reads).
    """
    from miex_gen.au_extract import FeatAuExtractor, jobs_for_dataset, jobs_for_path, locate_feat_weights, run_extraction
    from miex_gen.device import resolve_device

    jobs = []
    for text in inputs:
        kind, sep, rest = text.partition(":")
        if sep and kind.lower() in DATASET_KINDS:
            jobs += jobs_for_dataset(kind.lower(), Path(rest), out_dir)
        else:
            jobs += jobs_for_path(Path(text), out_dir)
    locate_feat_weights(weights_dir, multitask_weights)  # fail fast, before anything slow
    device = str(resolve_device(common.device))

    def progress(done: int, total: int, name: str) -> None:
        if not common.quiet and name:
            err_console.print(f"[{done + 1}/{total}] {name}")

    report = run_extraction(
        jobs, overwrite=overwrite, progress=progress,
        extractor_factory=lambda: FeatAuExtractor(device=device, weights_dir=weights_dir,
                                                  multitask_weights=multitask_weights,
                                                  face_threshold=face_threshold, batch_size=batch_size))
    console.print(f"wrote {len(report.written)} AU table(s) to {out_dir}"
                  + (f", kept {len(report.existing)} existing" if report.existing else "")
                  + (f"; {len(report.failed_frames)} clip(s) have frames without a face" if report.failed_frames else ""))


@aus.group("pool")
def pool() -> None:
    """Build and inspect AU pools (HDF5)."""


@pool.group("build")
def build() -> None:
    """Build a z^MiE, z^MaE or z^exp pool."""


def _load_sources(sources, **options):
    from miex_gen.datasets import load_clips

    clips = []
    for source in sources:
        loaded = load_clips(source.kind, source.path, **options.get(source.kind, {}))
        if loaded.skipped:
            err_console.print(f"{source}: skipped {len(loaded.skipped)} annotation row(s); first: {loaded.skipped[0]}")
        clips.extend(loaded)
    return clips


def _finish(built, out: Path) -> None:
    built.save(out)
    counts = ", ".join(f"{n} {c}" for c, n in zip(("negative", "positive", "surprise"), built.class_counts().values()))
    skipped = built.attrs.get("skipped", [])
    console.print(f"wrote {out}: {len(built)} z^{built.kind} entries ({counts})"
                  + (f"; skipped {len(skipped)} (first: {skipped[0]})" if skipped else ""))


@build.command("mie")
@click.argument("sources", nargs=-1, required=True, type=KindPath(MIE_KINDS))
@click.option("--au-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="AU tables at <au-dir>/<dataset>/<subject>/<clip>.csv (miex aus extract).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fold", default=None, metavar="miex3:K", help="Keep only training subjects of MiE-X 3-fold fold K.")
@click.option("--loso", "loso", multiple=True, metavar="DATASET:SUBJECT", help="Leave this subject out (repeatable).")
@click.option("--subjects", "subjects_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Keep only subjects listed in FILE ('dataset subject' per line).")
@click.option("--exclude-subjects", "exclude_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Drop subjects listed in FILE.")
@click.option("--smic-apex-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@common_options
def build_mie(sources, au_dir, out, fold, loso, subjects_file, exclude_file, smic_apex_file, common) -> None:
    """z^MiE from real micro-expression clips (SOURCES: casme2|samm|smic|megc2019|mmew:ROOT)."""
    from miex_gen.au_sources import build_mie_pool
    from miex_gen.au_sources.report import read_subject_list
    from miex_gen.datasets import load_miex_3fold
    from miex_gen.errors import ConfigError

    subjects = read_subject_list(subjects_file) if subjects_file else None
    exclude = read_subject_list(exclude_file) if exclude_file else set()
    if fold is not None:
        scheme, _, k = fold.partition(":")
        if scheme != "miex3" or k not in ("0", "1", "2"):
            raise ConfigError(f"--fold {fold!r} is not miex3:0, miex3:1 or miex3:2")
        train = load_miex_3fold()[int(k)].train_subjects
        subjects = train if subjects is None else subjects & train
    for item in loso:
        dataset, sep, subject = item.partition(":")
        if not sep:
            raise ConfigError(f"--loso {item!r} is not DATASET:SUBJECT (e.g. samm:006)")
        exclude.add((dataset.lower(), subject))
    options = {"smic": {"apex_file": smic_apex_file}, "megc2019": {"smic_apex_file": smic_apex_file}}
    clips = _load_sources(sources, **options)
    built = build_mie_pool(clips, au_dir, subjects=subjects, exclude_subjects=exclude or None, seed=common.seed)
    built.attrs["sources"] = [str(s) for s in sources]
    if fold is not None:
        built.attrs["fold"] = fold
    _finish(built, out)


@build.command("mae")
@click.argument("sources", nargs=-1, required=True, type=KindPath(MAE_KINDS))
@click.option("--au-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--draws", type=click.IntRange(min=1), default=10, show_default=True, help="Apex draws per clip.")
@click.option("--apex-range", nargs=2, type=click.FloatRange(0, 1), default=(0.25, 0.5), show_default=True)
@click.option("--compat", is_flag=True, help="Reproduce MiE-X's bugs: int((n+1)p) apex, CK+ sadness positive.")
@common_options
def build_mae(sources, au_dir, out, draws, apex_range, compat, common) -> None:
    """z^MaE from macro-expression sequences (SOURCES: ckplus|oulu|mmew-macro:ROOT)."""
    from miex_gen.au_sources import build_mae_pool

    seed = 0 if common.seed is None else common.seed
    built = build_mae_pool(_load_sources(sources), au_dir, draws_per_clip=draws, apex_range=tuple(apex_range),
                           seed=seed, compat=compat)
    built.attrs["sources"] = [str(s) for s in sources]
    _finish(built, out)


@build.command("exp")
@click.option("--n-per-class", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--allow-empty", is_flag=True, help="Keep all-zero apex vectors (fear) instead of redrawing.")
@click.option("--compat", is_flag=True, help="As the original code: keep all-zero apexes.")
@common_options
def build_exp(n_per_class, out, allow_empty, compat, common) -> None:
    """z^exp from the FACS rule table (no input files)."""
    from miex_gen.au_sources import build_exp_pool

    seed = 0 if common.seed is None else common.seed
    _finish(build_exp_pool(n_per_class, seed, allow_empty=allow_empty, compat=compat), out)


@pool.command("info")
@click.argument("pools", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a bar chart of mean apex AU intensity per class (PNG).")
@common_options
def info(pools, plot, common) -> None:
    """Counts per class and mean AUs per class of each pool."""
    from rich.table import Table

    from miex_gen.au_sources import AuPool
    from miex_gen.au_sources.report import plot_class_means, summary
    from miex_gen.aus import AU_NAMES, CLASS_NAMES

    loaded = {str(p): AuPool.load(p) for p in pools}
    for name, item in loaded.items():
        s = summary(item)
        console.print(f"[bold]{name}[/bold]: z^{s['kind']}, {s['n']} entries, {s['clips']} clips, "
                      f"{s['subjects']} subjects, datasets {', '.join(s['datasets']) or '-'}, seed {s['seed']}")
        table = Table("AU", *[f"{c} (n={s['class_counts'][c]})" for c in CLASS_NAMES],
                      title="mean apex AU per class (0-5)")
        for j, au in enumerate(AU_NAMES):
            table.add_row(au, *["-" if s["mean_apex"][c][j] is None else f"{s['mean_apex'][c][j]:.2f}"
                                for c in CLASS_NAMES])
        console.print(table)
    if plot is not None:
        console.print(f"wrote {plot_class_means(loaded, plot)}")


COMMANDS = [aus]
