"""``wm.plot_confidence(r)``: how sure the model was, token by token.

A line for the probability of each sampled token and, under it, a band for the runner-up (the best other
alternative). Where the band rises above the line the model picked a less likely token; where the two meet it
was torn. matplotlib is imported here, on first use. With no logprobs the axes say why (never an empty plot).
"""

from __future__ import annotations

from typing import Any

from ..core.response import Response


def plot_confidence(response: Response, ax: Any = None, segment: str = "answer") -> Any:
    """Probability of the sampled token per position, with the runner-up as a shaded band; returns the Axes."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .frames import tokens

    df = tokens(response, segment=segment)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    if df.empty:
        ax.text(0.5, 0.5, f"No token logprobs: {df.attrs.get('reason', '')}", ha="center", va="center", wrap=True)
        ax.set_axis_off()
        return ax
    x = df["position"].to_numpy()
    prob = df["prob"].to_numpy()
    with np.errstate(invalid="ignore"):
        runner = np.nan_to_num(np.exp(df["logprob"].to_numpy() - df["margin"].to_numpy()), nan=0.0)
    ax.fill_between(x, 0, runner, step="mid", alpha=0.35, color="tab:orange", label="runner-up")
    ax.plot(x, prob, drawstyle="steps-mid", lw=1, color="tab:blue", label="sampled token")
    upset = runner > prob
    if upset.any():
        ax.scatter(x[upset], prob[upset], s=12, color="tab:red", zorder=3, label="a likelier token existed")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    ax.set_xlabel(f"token position ({segment})")
    ax.set_ylabel("probability")
    ax.set_title(f"{response.model}: sampled token vs runner-up")
    ax.legend(loc="lower right", fontsize="small")
    return ax
