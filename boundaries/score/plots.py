"""Pictures: activation curves over the mel spectrogram, ROC and PR curves (matplotlib, Agg)."""

import numpy as np

from boundaries.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def plot_activation(path, mel, activations, *, fps, est_s=(), ref_s=(), title=""):
    """Mel spectrogram (when ``mel`` is not None) above the activation curve, detected (red) and
    reference (green) times."""
    plt = _pyplot()
    times = np.arange(len(activations)) / fps
    if mel is None:
        fig, bottom = plt.subplots(figsize=(12, 2.5))
        axes = (bottom,)
        bottom.set_title(title)
    else:
        fig, axes = plt.subplots(2, 1, figsize=(12, 5), sharex=True,
                                 gridspec_kw={"height_ratios": [2, 1]})
        top, bottom = axes
        top.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                   extent=[0, len(activations) / fps, 0, mel.shape[0]])
        top.set_ylabel("mel band")
        top.set_title(title)
    bottom.plot(times, activations, color="black", lw=0.8, label="activation")
    for axis in axes:
        for t in ref_s:
            axis.axvline(t, color="limegreen", lw=1.5, ls="--")
        for t in est_s:
            axis.axvline(t, color="red", lw=1.0)
    bottom.plot([], [], color="limegreen", ls="--", label="reference")
    bottom.plot([], [], color="red", label="detected")
    bottom.set_ylim(0, 1.02)
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_curves(roc_path, pr_path, curves: dict):
    """ROC and PR curves, one line per named ``(probs, labels)`` pair, in two PNG files. With
    many curves (a study) the legend goes beside the axes and colours cycle through line styles."""
    from sklearn import metrics

    plt = _pyplot()
    many = len(curves) > 8
    size = (11, 6) if many else (6, 5)
    fig_roc, ax_roc = plt.subplots(figsize=size)
    fig_pr, ax_pr = plt.subplots(figsize=size)
    colours = plt.get_cmap("tab10").colors
    for i, (name, (probs, labels)) in enumerate(curves.items()):
        if not 0 < np.sum(labels) < len(labels):
            continue
        style = {"color": colours[i % 10], "ls": ("-", "--", ":", "-.")[i // 10 % 4], "lw": 1.0}
        fpr, tpr, _ = metrics.roc_curve(labels, probs)
        precision, recall, _ = metrics.precision_recall_curve(labels, probs)
        ax_roc.plot(fpr, tpr, label=f"{name} (AUC {metrics.auc(fpr, tpr):.3f})", **style)
        ap = metrics.average_precision_score(labels, probs)
        ax_pr.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})", **style)
        ax_pr.axhline(np.mean(labels), color="grey", ls=":", lw=0.8)
    ax_roc.plot([0, 1], [0, 1], color="grey", ls=":", label="chance")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall (dotted: base rate)")
    for fig, axis, path in ((fig_roc, ax_roc, roc_path), (fig_pr, ax_pr, pr_path)):
        if many:
            axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                        ncol=1 + len(curves) // 24)
        else:
            axis.legend(fontsize=7, loc="best")
        fig.tight_layout()
        _save(fig, path)
        plt.close(fig)
