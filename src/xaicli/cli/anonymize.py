"""``xaicli dicom-anonymize``: the DICOM PS3.15 Basic Profile over files and folders, and --check."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xaicli.errors import PartialFailure, UsageError


def _boxes(texts: list[str]) -> tuple[tuple[int, int, int, int], ...]:
    boxes = []
    for text in texts or []:
        parts = [p.strip() for p in text.split(",")]
        try:
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise UsageError(f"--mask-box {text!r}: expected X,Y,WIDTH,HEIGHT in pixels") from None
        if min(x, y) < 0 or min(w, h) <= 0:
            raise UsageError(f"--mask-box {text!r}: position must be >= 0 and size > 0")
        boxes.append((x, y, w, h))
    return tuple(boxes)


def dicom_anonymize(
    ctx: typer.Context,
    inputs: list[str] = typer.Argument(None, help="DICOM files and folders (folders are searched recursively)."),
    output: Path = typer.Option(
        None, "--output", "--out", "-o", help="Output folder: PATIENT/STUDY/SERIES/INSTANCE.dcm named by pseudonyms and new UIDs."
    ),
    layout: str = typer.Option(
        "pseudonyms", "--layout", help="pseudonyms (default), or mirror: copy the input's folder and file names (they may identify)."
    ),
    option: list[str] = typer.Option(
        None,
        "--option",
        help="Profile option (repeatable): retain-safe-private, retain-uids, retain-device-identity, "
        "retain-institution-identity, retain-patient-characteristics, retain-long-full-dates, "
        "retain-long-modified-dates, clean-descriptors, clean-structured-content, clean-graphics; and "
        "unsafe-keep-unlisted-text (keeps free text Table E.1-1 does not list: it may identify).",
    ),
    keep: list[str] = typer.Option(None, "--keep", help="Keep this attribute as it is (tag or keyword; repeatable)."),
    remove: list[str] = typer.Option(None, "--remove", help="Remove this attribute (tag or keyword; repeatable)."),
    recipe: Path = typer.Option(None, "--recipe", help="YAML recipe: options, keep, remove, actions, safe_private."),
    key: str = typer.Option(None, "--key", help="Secret for keyed UIDs, pseudonyms and date offsets."),
    key_file: Path = typer.Option(None, "--key-file", help="File holding the secret (default: generate one)."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Worker processes (0: one per CPU core)."),
    burned_in: str = typer.Option(
        "quarantine", "--burned-in", help="Images with burned-in text: quarantine, mask (with --mask-box) or keep."
    ),
    mask_box: list[str] = typer.Option(None, "--mask-box", help="X,Y,WIDTH,HEIGHT to blank in burned-in images."),
    burned_in_modalities: str = typer.Option(
        "US,SC,OT,XA,RF,ES", help="Modalities treated as burned-in when Burned In Annotation is absent."
    ),
    quarantine: Path = typer.Option(None, "--quarantine", help="Where held-back files go (default: OUTPUT-quarantine)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run into the same output (same inputs, options and key)."),
    check_dir: Path = typer.Option(None, "--check", help="Scan this folder for anything the profile removes; exit 4 on findings."),
    against: Path = typer.Option(
        None, "--against", help="With --check: the original input; search the output for its names, IDs, dates, addresses."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary to stdout."),
    report: bool = typer.Option(False, "--report", help="Also write OUTPUT/report.html: the run's counts and reasons, never a value (see `xaicli report`)."),
) -> None:
    """De-identify DICOM files with the PS3.15 Annex E Basic Profile (or --check a folder)."""
    from xaicli import __version__
    from xaicli.anonymize.batch import anonymize
    from xaicli.anonymize.checker import check
    from xaicli.anonymize.profile import build_rules
    from xaicli.anonymize.recipe import load_recipe
    from xaicli.cli.render import err_console, out_console, table

    site = load_recipe(recipe) if recipe else {}
    rules = build_rules(
        options=list(site.get("options", [])) + list(option or []),
        keep=list(site.get("keep", [])) + list(keep or []),
        remove=list(site.get("remove", [])) + list(remove or []),
        actions=site.get("actions", {}),
        safe_private=site.get("safe_private", []),
    )
    if "retain-safe-private" in rules.options and not rules.safe_private:
        err_console().print("[yellow]retain-safe-private: no safe_private list in a recipe, and xaicli has no built-in "
                            "list (PS3.15 Table E.3.10-1): no private attribute is retained[/yellow]")
    modalities = tuple(site.get("burned_in_modalities") or [m for m in burned_in_modalities.split(",") if m.strip()])
    console = out_console()

    if against is not None and check_dir is None:
        raise UsageError("--against goes with --check OUTPUT")
    if check_dir is not None:
        if inputs:
            raise UsageError("--check scans one folder: give no other inputs with it")
        result = check(check_dir, rules, modalities, against)
        if as_json:
            typer.echo(json.dumps({"files": result.files, "checked": result.checked, "skipped": len(result.skipped),
                                   "findings": [dict(zip(("file", "location", "keyword", "problem"), f, strict=True)) for f in result.findings]}))
        else:
            console.print(f"checked {result.checked} DICOM files of {result.files} ({len(result.skipped)} not DICOM)")
            if result.findings:
                console.print(table("Findings", ["file", "location", "keyword", "problem"], result.findings[:200]))
        if result.findings:
            files = sorted({f[0] for f in result.findings})
            raise PartialFailure(
                f"{len(result.findings)} findings in {len(files)} files of {check_dir}",
                [(f, ", ".join(sorted({p for g, _, _, p in result.findings if g == f}))) for f in files[:50]],
            )
        found = "no residual identifying attributes found"
        console.print(f"[green]{found}{', and no value of the input' if against is not None else ''}[/green]")
        return

    if not inputs:
        raise UsageError("give DICOM files or folders to de-identify (or --check DIR)")
    if output is None:
        raise UsageError("give the output folder with --output/-o")
    if layout == "mirror" and not as_json:
        err_console().print("[yellow]--layout mirror: the input's folder and file names are copied into the output; "
                            "rename any that carry a patient's name, ID or date before sharing it[/yellow]")
    summary = anonymize(
        list(inputs),
        output,
        rules,
        key=key,
        key_file=str(key_file) if key_file else None,
        jobs=jobs or None,
        dry_run=dry_run,
        overwrite=overwrite,
        resume=resume,
        layout=layout,
        burned_in=burned_in,
        mask_boxes=_boxes(mask_box),
        burned_in_modalities=modalities,
        quarantine=quarantine,
        version=__version__,
    )
    ok, quarantined = summary.by_status("ok"), summary.by_status("quarantined")
    skipped, failed = summary.by_status("skipped"), summary.by_status("failed")
    held = summary.by_status("held back")
    rate = len(summary.results) / summary.seconds if summary.seconds > 0 else 0.0
    if as_json:
        typer.echo(json.dumps({
            "files": len(summary.results), "deidentified": len(ok), "quarantined": len(quarantined),
            "held_back": len(held), "skipped": len(skipped), "failed": len(failed), "clashes": len(summary.clashes),
            "seconds": round(summary.seconds, 3), "dry_run": dry_run, "key": summary.key_note, "kept": summary.kept,
            "audit": str(summary.audit_path) if summary.audit_path else None,
            "report": str(summary.report_path) if summary.report_path else None,
            "paths": str(summary.paths_path) if summary.paths_path else None,
        }))
    else:
        err = err_console()
        err.print(summary.key_note)
        if dry_run:
            counts: dict[str, int] = {}
            for result in ok + quarantined:
                for _, _, _, action, _ in result.actions:
                    counts[action] = counts.get(action, 0) + 1
            console.print(table("Dry run: attribute actions that would be applied", ["action", "count"], sorted(counts.items())))
        rows = [("de-identified", len(ok)), ("quarantined (burned-in text)", len(quarantined)),
                ("held back (DICOMDIR)", len(held)),
                ("skipped (not DICOM)", len(skipped)), ("failed", len(failed)), ("name clashes (renamed)", len(summary.clashes))]
        if summary.kept:
            rows.append(("kept from the interrupted run (--resume)", summary.kept))
        console.print(table(f"dicom-anonymize: {len(summary.results)} files in {summary.seconds:.2f} s ({rate:.0f} files/s)",
                            ["result", "files"], rows))
        # Inputs by their label (a number, or the mirrored path): their own paths may identify.
        for src, new in summary.clashes:
            err.print(f"[yellow]name clash: {summary.label(src)} written as {new}[/yellow]")
        for result in skipped:
            err.print(f"skipped {summary.label(result.src)}: {result.reason}")
        for result in summary.results:
            if result.status == "ok" and result.burned_in and not result.masked:
                err.print(f"[yellow]kept with burned-in annotation {result.burned_in}: {summary.label(result.src)}[/yellow]")
        if summary.audit_path:
            console.print(f"audit: {summary.audit_path}  report: {summary.report_path}")
            console.print(f"inputs by number: {summary.paths_path} (beside the output, mode 0600: do not share)")
    from xaicli.cli.report import finish

    finish("dicom-anonymize", output, ctx.params, report=report and not dry_run, overwrite=overwrite)
    problems = [(summary.label(r.src), r.reason) for r in failed + quarantined + held]
    if problems:
        raise PartialFailure(f"{len(problems)} of {len(summary.results)} files were not de-identified", problems)
