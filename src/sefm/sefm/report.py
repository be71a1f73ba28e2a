"""The demo's report: success vs extra episodes (PNG), the Stage 1 and Stage 2 rates with 95%
intervals, and how well the stopping rule's choice matches ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sefm_reward.calibration import TOLERANCE


def intervals_overlap(a: dict, b: dict) -> bool:
    return not (a["wilson95"][1] < b["wilson95"][0] or b["wilson95"][1] < a["wilson95"][0])


def chosen_loop(summary: dict) -> dict:
    """The history record of the loop whose checkpoint the stopping rule kept."""
    return next(h for h in summary["history"] if h["loop"] == summary["best_loop"])


def plot_curve(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demos = summary["demonstrations"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    curve = summary["curve"]
    x = np.array([c["extra_episodes"] for c in curve]) / demos * 100
    y = np.array([c["success_rate"] for c in curve]) * 100
    err = np.array([[c["success_rate"] - c["wilson95"][0], c["wilson95"][1] - c["success_rate"]] for c in curve]).T
    ax.errorbar(x, y, yerr=err * 100, fmt="o-", capsize=3, label="greedy, held-out seeds (95% Wilson)")
    hist = summary["history"]
    hx = np.array([h["extra_episodes"] for h in hist]) / demos * 100
    ax.plot(
        hx, [h["ground_truth_success"] * 100 for h in hist], ":", alpha=0.7, label="practice episodes, ground truth"
    )
    ax.plot(hx, [h["detected_success"] * 100 for h in hist], "--", alpha=0.7, label="practice episodes, detector")
    best = chosen_loop(summary)
    ax.axvline(
        best["extra_episodes"] / demos * 100, color="grey", lw=0.8, label=f"chosen checkpoint (loop {best['loop']})"
    )
    ax.set_xlabel(f"extra episodes, % of the {demos} imitation episodes")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"Stage 2 self-improvement, sim LanguageTable {summary['task_family']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def stopping_rule(summary: dict) -> dict:
    """The loop the detector's moving window chose against the loop ground truth would have chosen."""
    hist = summary["history"]
    gt_best = max(hist, key=lambda h: h["ground_truth_success"])
    chosen = chosen_loop(summary)
    det = np.array([h["detected_success"] for h in hist])
    gt = np.array([h["ground_truth_success"] for h in hist])
    corr = float(np.corrcoef(det, gt)[0, 1]) if len(hist) > 1 and det.std() > 0 and gt.std() > 0 else None
    curve = [c for c in summary["curve"] if c["loop"] > 0]
    best_eval = max(curve, key=lambda c: c["success_rate"]) if curve else None
    return {
        "chosen_loop": chosen["loop"],
        "chosen_practice_ground_truth": chosen["ground_truth_success"],
        "ground_truth_best_loop": gt_best["loop"],
        "ground_truth_best_practice": gt_best["ground_truth_success"],
        "detected_vs_ground_truth_correlation": corr,
        "best_evaluated_loop": best_eval["loop"] if best_eval else None,
        "best_evaluated_success": best_eval["success_rate"] if best_eval else None,
    }


def threshold_lines(calibration: dict | None, s: float) -> list[str]:
    """Where s came from: measured on fresh demonstrations, or the configured value and why."""
    if calibration is None:
        return [f"s = {s} as configured (calibration off).", ""]
    before = calibration["d_before_goal_p5"]
    where = (
        f"on {calibration['episodes']} fresh demonstrations ({calibration['successful']} successful; d at the goal: "
        f"median {calibration['d_at_goal_median']:.1f}; d earlier in the episodes: 5th percentile "
        + ("n/a)" if before is None else f"{before:.1f})")
    )
    if calibration["recommended_threshold"] is None:
        verdict = (
            f"No threshold reached precision {pct(calibration['min_precision'])} {where}: the reward model does not "
            f"tell success apart, so s = {s} as configured."
        )
    else:
        verdict = (
            f"s = {s}: the highest-recall threshold with precision >= {pct(calibration['min_precision'])} {where}."
        )
    return [verdict, "", f"![detector precision and recall against s]({calibration['figure']})", ""]


def paired_lines(paired: dict | None) -> list[str]:
    """Seed by seed on the same held-out seeds: a real change, or a reshuffle of which seeds fail."""
    if not paired:
        return []
    return [
        f"Seed by seed on the same {paired['seeds']} seeds: Stage 2 turned {paired['gained']} of Stage 1's failures "
        f"into successes and {paired['lost']} of its successes into failures (McNemar's exact p = "
        f"{paired['mcnemar_p']:.3g}).",
        "",
    ]


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def write_report(summary: dict, run: Path) -> Path:
    plot = plot_curve(summary, run / "success_vs_extra_episodes.png")
    s1, s2, demos = summary["stage1"], summary["stage2"], summary["demonstrations"]
    extra = chosen_loop(summary)["extra_episodes"]
    total_extra = summary["history"][-1]["extra_episodes"]
    rule = stopping_rule(summary)
    gain = s2["success_rate"] > s1["success_rate"] and not intervals_overlap(s1, s2)
    cfg = summary["config"]["stage2"]
    task = summary["task_family"]
    lines = [
        f"# sefm demo: Stage 1 vs Stage 2 on sim LanguageTable `{task}`",
        "",
        f"Imitation data: {demos} scripted `{task}` episodes. Stage 2: {summary['config']['robots']} simulated "
        "robots practising through the ROS 2 graph (sim bridge, policy, reward, recorder, episode manager "
        "per robot); the learner reads their episode bags and hot-reloads the policy nodes each loop.",
        "",
        "| | success (greedy, held-out seeds) | 95% Wilson | episodes | mean length |",
        "|---|---|---|---|---|",
        f"| Stage 1 (BC) | {pct(s1['success_rate'])} | {pct(s1['wilson95'][0])} – {pct(s1['wilson95'][1])} "
        f"| {s1['episodes']} | {s1['mean_length']:.1f} |",
        f"| Stage 2 (loop {summary['best_loop']}) | {pct(s2['success_rate'])} | {pct(s2['wilson95'][0])} – "
        f"{pct(s2['wilson95'][1])} | {s2['episodes']} | {s2['mean_length']:.1f} |",
        "",
        f"Extra episodes to the chosen checkpoint: {extra} ({extra / demos:.1%} of the imitation episodes); "
        f"in all Stage 2 practised {total_extra} ({total_extra / demos:.1%}).",
        "",
        *paired_lines(summary.get("paired")),
        "**Verdict:** "
        + (
            "Stage 2 beats Stage 1 with non-overlapping 95% intervals."
            if gain
            else "no gain with non-overlapping 95% intervals in this run (see below)."
        ),
        "",
        f"![success vs extra episodes]({plot.name})",
        "",
        "## Success detector (frozen Stage 1 steps-to-go, s = " + f"{cfg['success_threshold']})",
        "",
        *threshold_lines(summary.get("calibration"), cfg["success_threshold"]),
        f"On the Stage 1 evaluation: precision {pct(s1['detector_precision'])}, recall {pct(s1['detector_recall'])}; "
        f"on the Stage 2 evaluation: precision {pct(s2['detector_precision'])}, recall {pct(s2['detector_recall'])}. "
        f"A firing is right at most {TOLERANCE} steps before the goal; it fired earlier in "
        f"{pct(s1.get('detector_early'))} and {pct(s2.get('detector_early'))} of the successful episodes, where "
        "practice would have ended them short.",
        "",
        "## Stopping rule",
        "",
        f"Best checkpoint = highest detected success over a moving window of {cfg['window']} loops; stop after "
        f"{cfg['patience']} loops without a better window. It chose loop {rule['chosen_loop']} (practice ground-truth "
        f"success there {pct(rule['chosen_practice_ground_truth'])}); ground truth on the practice episodes peaks at "
        f"loop {rule['ground_truth_best_loop']} ({pct(rule['ground_truth_best_practice'])}). Correlation of detected "
        f"and ground-truth success across loops: "
        + (
            "n/a"
            if rule["detected_vs_ground_truth_correlation"] is None
            else f"{rule['detected_vs_ground_truth_correlation']:.2f}"
        )
        + (
            f". Best evaluated curve point: loop {rule['best_evaluated_loop']} ({pct(rule['best_evaluated_success'])})."
            if rule["best_evaluated_loop"] is not None
            else "."
        ),
        "",
        "## Per loop",
        "",
        "| loop | episodes | extra | detected | ground truth | window | mean length | loss |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {h['loop']} | {h['episodes']} | {h['extra_episodes']} | {pct(h['detected_success'])} | "
            f"{pct(h['ground_truth_success'])} | {pct(h['window_detected_success'])} | {h['mean_length']:.1f} | "
            f"{h['loss']:.4f} |"
            for h in summary["history"]
        ),
        "",
        "## Settings and time",
        "",
        f"Stage 2: lr {cfg['lr']}, temperature {cfg['temperature']} (places {cfg['chain_temperature']}), "
        f"KL β {cfg['kl_coef']}, s = {cfg['success_threshold']}, "
        f"N = {cfg['updates']}, B = {cfg['minibatch']}, gamma {cfg['gamma']}, c = {cfg['coef']}, "
        f"max {cfg['max_steps']} steps, up to {cfg['loops']} loops. Stage 1: {summary['stage1_dir']}.",
        "",
        "Minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["minutes"].items()) + ".",
        "",
    ]
    path = run / "report.md"
    path.write_text("\n".join(lines))
    return path
