"""The pages of runs about a model itself: ``predict``, ``train`` and ``consistency-study``, and the
model-quality section a ``compare`` page shares with them.

Classification: accuracy, the confusion matrix (rows true, columns predicted, shaded by the share
of the row) and the classification report (per-class precision, recall, F1 and support, the macro
and weighted averages), with the pathologies predicted as the normal class when the run names one,
as the chest X-ray study reports them. Regression: MAE and RMSE against the MAE of predicting the
mean. Segmentation: Dice and IoU, per image and pooled.
"""

from __future__ import annotations

from typing import Any

from xaicli.report.load import Run, number
from xaicli.report.view import Cell, Column, Page, Section, fmt, settings_section, table


def quality_section(report: dict[str, Any] | None, task: str, title: str = "Model quality") -> Section | None:
    """The model's quality from an evaluation report (:mod:`xaicli.evaluation`'s dicts)."""
    if not report:
        return None
    data: dict[str, Any] = {"task": task, "n": report.get("n")}
    if task == "classification":
        names = report["class_names"]
        matrix = report["confusion_matrix"]
        heads = [Column("true \\ predicted", numeric=False)] + [Column(n) for n in names]
        rows = []
        for i, (name, counts) in enumerate(zip(names, matrix, strict=True)):
            total = sum(counts) or 1
            rows.append([Cell(name)] + [Cell(str(v), v, "diagonal" if i == j else "",
                                             f"{100.0 * v / total:.0f} % of the true {name} images", v / total)
                                        for j, v in enumerate(counts)])
        data["matrix"] = table(heads, rows, id="confusion-matrix")
        body = [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]] for r in report["per_class"]]
        for label in ("macro_avg", "weighted_avg"):
            avg = report[label]
            body.append([label.replace("_", " "), avg["precision"], avg["recall"], avg["f1"], report["n"]])
        data["report"] = table([Column("class", numeric=False), Column("precision", True), Column("recall", True),
                                Column("f1", True), Column("support")], body, id="classification-report")
        data["headline"] = [("accuracy", Cell.of(report["accuracy"]))]
        if "missed_pathologies" in report:
            data["headline"].append((f"pathologies predicted as {report['normal_class']}",
                                     Cell(f"{report['missed_pathologies']} ({100 * report['missed_pathology_rate']:.1f} %)",
                                          report["missed_pathologies"])))
    elif task == "regression":
        data["headline"] = [("MAE", Cell.of(report["mae"])), ("RMSE", Cell.of(report["rmse"])),
                            ("MAE of predicting the mean", Cell.of(report["mae_constant_mean"]))]
    else:
        data["headline"] = [("Dice (mean per image)", Cell.of(report["dice"])), ("Dice (pooled)", Cell.of(report["dice_pooled"])),
                            ("IoU (mean per image)", Cell.of(report["iou"])), ("IoU (pooled)", Cell.of(report["iou_pooled"]))]
    return Section("quality", title, "quality", data)


def quality_from_predictions(rows: list[dict[str, str]], class_names: list[str]) -> Section | None:
    """``compare``'s predictions table judged as ``predict`` judges it (images with a known truth)."""
    from xaicli import evaluation

    judged = [r for r in rows if r.get("true") not in (None, "")]
    if not judged:
        return None
    if "correct" in judged[0]:
        names = list(class_names) or sorted({r["true"] for r in judged} | {r["predicted"] for r in judged})
        names += sorted({r[c] for r in judged for c in ("true", "predicted")} - set(names))
        report = evaluation.classification_report([names.index(r["true"]) for r in judged],
                                                  [names.index(r["predicted"]) for r in judged], names)
        return quality_section(report, "classification")
    if "abs_error" in judged[0]:
        pairs = [(number(r["predicted"]), number(r["true"])) for r in judged]
        pairs = [(p, t) for p, t in pairs if p is not None and t is not None]
        report = evaluation.regression_report([p for p, _ in pairs], [t for _, t in pairs])
        return quality_section(report, "regression")
    return None


def predict_page(run: Run) -> Page:
    from xaicli.report.images import images_section

    predictions = run.table("predictions.csv")
    report = run.document("evaluation.json")
    model = run.record.get("model") or {}
    task = model.get("task") or ("classification" if "confidence" in (predictions[0] if predictions else {})
                                 else "regression" if "abs_error" in (predictions[0] if predictions else {})
                                 else "segmentation")
    sections = [s for s in (settings_section(run), quality_section(report, task)) if s]
    sections.insert(0, _failures(run))
    sections.append(images_section(run, predictions, {}))
    truth = (report or {}).get("truth_source")
    facts = [("run", "predict"), ("images", fmt(len(predictions))), ("task", task)]
    facts += [("model", model["file"])] if model.get("file") else []
    facts += [("truth", str(truth))] if truth else []
    return Page(f"Predictions on {len(predictions)} image(s)", "predict", facts, sections)


def _failures(run: Run) -> Section:
    from xaicli.report.explained import verdict_section

    return verdict_section(run, expected_gates=False)


def train_page(run: Run) -> Page:
    from xaicli.report.figures import file_uri
    from xaicli.report.runfile import model_description

    history = run.table("history.csv")
    model = run.record.get("model") or model_description(run.folder / "model.keras") or {}
    validation = run.document("validation.json")
    task = model.get("task", "classification")
    columns = list(history[0]) if history else []
    sections = [_failures(run)] + [s for s in (settings_section(run, model),) if s]
    sections.append(Section("training", "Training", "figure", {
        "figure": file_uri(run.folder / "training-curve.png"), "alt": "loss and metrics per epoch",
        "table": table([Column(c) for c in columns], [[r[c] for c in columns] for r in history], id="history")}))
    quality = quality_section(validation, task, "Validation")
    if quality is not None:
        sections.append(quality)
    training = (model.get("extra") or {}).get("training") or {}
    facts = [("run", "train"), ("architecture", model.get("architecture") or "\u2013"), ("task", task),
             ("epochs", fmt(len(history)))]
    facts += [("images", f"{training.get('n_train', '?')} train, {training.get('n_val', '?')} validation")] if training else []
    return Page(f"Training of {model.get('architecture') or 'a model'}", "train", facts, sections)


def study_page(run: Run) -> Page:
    from xaicli.report.figures import file_uri

    rows = run.table("study.csv")
    columns = [c for c in (rows[0] if rows else {}) if c != "model"]
    direction = {"test_accuracy": True, "consistency": False}
    body = table([Column(c, direction.get(c), numeric=c not in ("model",)) for c in columns],
                 [[r[c] for c in columns] for r in rows], id="study-table",
                 caption="One model per depth and lambda; consistency is L_CAM of the Grad-CAM maps of the "
                         "correctly classified test images (lower = more consistent).")
    sections = [_failures(run)] + [s for s in (settings_section(run),) if s]
    sections.append(Section("study", "Accuracy and consistency", "figure", {
        "figure": file_uri(run.folder / "accuracy-vs-consistency.png"), "alt": "accuracy versus consistency",
        "table": body}))
    sections.append(Section("class-means", "Class-mean Grad-CAM maps", "figure", {
        "figure": file_uri(run.folder / "class-mean-maps.png"), "alt": "class-mean maps per depth and lambda",
        "caption": "Per depth, the mean Grad-CAM map of the correctly classified test images of each class "
                   "(rows) for each lambda (columns), jet colormap from 0 (blue) to 1 (red)."}))
    facts = [("run", "consistency-study"), ("models", fmt(len(rows)))]
    return Page(f"Grad-CAM consistency study ({len(rows)} models)", "consistency-study", facts, sections)
