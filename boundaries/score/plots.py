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


def clock_label(seconds: float, _=None) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on: the time axis of every plot."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def plot_activation(path, mel, activations, *, fps, est_s=(), ref_s=(), title="",
                    threshold=None, sr=22050, hop_length=512, fmin=27.5, fmax=11025.0):
    """Log-mel (Hz axis; when ``mel`` is given) above the activation, with numbered detected
    boundaries (red, labelled with their times), references (green, dashed, when given) and the
    threshold on the activation's scale (when given). The figure widens with the recording (about
    1.5 inches a minute, 12 to 48 inches), so an hour-long mix stays readable."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    duration = len(activations) / fps
    times = np.arange(len(activations)) / fps
    width = float(np.clip(1.5 * duration / 60, 12, 48))
    if mel is None:
        fig, bottom = plt.subplots(figsize=(width, 2.8))
        axes = (bottom,)
    else:
        import librosa.display

        fig, axes = plt.subplots(2, 1, figsize=(width, 5.5), sharex=True,
                                 gridspec_kw={"height_ratios": [2, 1]})
        top, bottom = axes
        librosa.display.specshow(mel, sr=sr, hop_length=hop_length, x_axis="s", y_axis="mel",
                                 fmin=fmin, fmax=fmax, ax=top, cmap="magma")
        top.set_ylabel("Hz")
        top.set_xlabel("")
    axes[0].set_title(title, pad=22)
    bottom.plot(times, activations, color="black", lw=0.8, label="activation")
    if threshold is not None:
        bottom.axhline(threshold, color="tab:blue", lw=0.8, ls="--",
                       label=f"threshold {threshold:g}")
    for axis in axes:
        for t in ref_s:
            axis.axvline(t, color="limegreen", lw=1.5, ls="--")
        for t in est_s:
            axis.axvline(t, color="red", lw=1.0)
    for n, t in enumerate(est_s, start=1):  # labels alternate in height so close ones stay apart
        axes[0].annotate(f"{n} {clock_label(t)}", (t, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(2, 2 + 9 * (n % 2)), textcoords="offset points", fontsize=7,
                         color="red")
    if len(ref_s):
        bottom.plot([], [], color="limegreen", ls="--", label="reference")
    bottom.plot([], [], color="red", label="detected")
    bottom.set_ylim(0, 1.02)
    bottom.set_xlim(0, duration)
    bottom.xaxis.set_major_locator(MultipleLocator(60 if duration > 600 else
                                                   10 if duration < 120 else 30))
    bottom.xaxis.set_major_formatter(FuncFormatter(clock_label))
    bottom.set_xlabel("time (m:ss)")
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
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate",
               title="ROC (frames pooled over all files)")
    ax_pr.set(xlabel="recall", ylabel="precision",
              title="Precision-recall, frames pooled over all files (dotted: base rate)")
    for fig, axis, path in ((fig_roc, ax_roc, roc_path), (fig_pr, ax_pr, pr_path)):
        if many:
            axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                        ncol=1 + len(curves) // 24)
        else:
            axis.legend(fontsize=7, loc="best")
        fig.tight_layout()
        _save(fig, path)
        plt.close(fig)
