"""``moasha``: hypervolume reached against epochs spent, MO-ASHA against no early stopping.

The problem. A synthetic multi-fidelity stand-in for a curriculum search that runs in
microseconds per epoch (no training): five searched parameters shaped like the real space
(``theta_max`` in [0, 180], ``eps_max`` in [0, 0.3], the schedule kind, its ``start_frac``, a
log-uniform ``lr``) and two maximised objectives, ``spatial_acc`` and ``adv_acc``. Every trial
reports once per epoch, as the real trainable does, a learning curve
``target * (1 - exp(-epoch / tau)) / (1 - exp(-epochs / tau))`` plus evaluation noise (sd 0.015
per epoch, as on a small evaluation subset; 0.005 after the last epoch, the full test set) and
``final: True`` only after its last epoch. The targets trade off against each other (a larger
rotation range costs adversarial accuracy and a larger eps costs spatial accuracy, so they form
a Pareto front); ``lr`` scales both. Curricula are partly *deceptive* at low fidelity, as real
ones are: a ramped schedule ends up to 15 % higher than a constant one but learns up to 1.8x more
slowly (larger ``tau``), so rankings at early epochs are only partly right.

The loop. A faithful simulation of Ray Tune's asynchronous execution, in one process:
``workers`` trials run at once, each epoch of a trial takes its own time (log-normal, sd 0.2, so
trials reach rungs out of order); every result goes to the *real* scheduler's
``on_trial_result`` (:class:`tune_jobs.schedulers.MOASHAScheduler`, or Ray's ``ASHAScheduler``),
a freed worker asks the *real* searcher (:class:`tune_jobs._optuna.JournaledOptunaSearch`, a Ray
``OptunaSearch``) for the next trial with ``suggest``, and an ended trial is told with
``on_trial_complete`` and the PRUNED rule (:func:`tune_jobs.schedulers.stopped_early`) exactly
as ``TuneController`` does (``stop_trial`` -> scheduler, then searcher, with the last result).
``--quick`` runs only this simulation; the full run also repeats one seed of ``moasha`` and
``none`` through a real ``Tuner`` (Ray Tune, ConcurrencyLimiter, function trainable) as a check
that the simulation is faithful.

Measured. No early stopping runs ``trials`` trials of ``epochs`` epochs: its budget ``B`` is
``trials * epochs`` epochs. Every other method runs until it has spent ``B`` epochs (MO-ASHA
spends them on more, mostly shorter, trials). The hypervolume after ``t`` epochs is that of the
*noise-free* objectives of the trials that had completed their last epoch by then (stopped
trials count for nothing), from the reference point (0, 0) (``analysis.hypervolume``), as a
percentage of the hypervolume of the problem's true front. "Epochs to match" is the first ``t``
at which a method's hypervolume, averaged over the seeds, reaches the final hypervolume of no
early stopping averaged over the same seeds.

Methods: ``moasha`` (TPE + MO-ASHA, grace 1 epoch, reduction factor 3: rungs at epochs 1, 3, 9
of 27), ``none`` (TPE, every trial runs all epochs), ``random`` (random search, all epochs),
``random + moasha`` (MO-ASHA's original setting: random sampling) and ``asha`` (TPE + Ray's ASHA
on ``spatial_acc`` only).

Figures (``python -m benchmarks.bench_moasha``, 2 CPU cores, 1.5 min; 27 epochs; no early
stopping runs 32 trials = 864 epochs; 4 workers; 12 seeds; grace 1, eta 3). HV in % of the true
front's at 10, 25, 40 and 100 % of the epochs, mean (+- sd) over the seeds; "match": when the
mean curve reaches no early stopping's final mean HV; "per seed": the median over the seeds of
when each seed reaches its own no-early-stopping final HV; trials and stopped: means per run.
``none`` and ``random`` share their first 10 trials (TPE starts at random, same seed):

    method              @10%  @25%  @40%         @100%        match  per seed  trials  stopped
    moasha              3.8   47.0  59.3 +- 4.9  68.7 +- 5.2  59%    72%       120     82%
    none                1.6   33.0  44.5 +- 9.2  64.5 +- 4.7  100%   99%       32      0%
    random              1.6   33.0  44.5 +- 9.2  59.6 +- 7.2  never  never     32      0%
    random + moasha     3.8   47.6  60.1 +- 6.3  70.7 +- 4.1  57%    55%       200     91%
    asha (spatial_acc)  3.8   42.7  50.4 +- 6.0  55.0 +- 7.3  never  never     94      74%

    real Ray Tune, seed 0 (varies run to run with the order results arrive in):
    moasha 115 trials (94 stopped), HV @40% 64.5, @100% 70.8, 17 s;
    none 32 trials, HV @40% 53.7, @100% 64.9, 14 s (another run: moasha 68.2 @40%, none 65.0;
    a third: moasha 115 trials, 95 stopped, 67.8 @40%, 69.3 @100%; none 57.1, 65.0)

``--quick`` (24 trials = 648 epochs, 4 seeds, 10 s): moasha 55.9 +- 5.0 @40% and 66.5 +- 4.9
@100% against none 43.6 +- 7.7 and 57.6 +- 5.0; to match 43 %, per seed 48 %.

Target: MO-ASHA reaches the final hypervolume of no early stopping with at most 40 % of its
epochs (``B / epochs to match >= 2.5``). **Not met**: it needs 59 % (mean curve; 72 % as a
per-seed median; 65 % and 66 % on the fresh seeds 12-47 of ``--validate``). What holds: at every
budget from 25 % on MO-ASHA is ahead (59.3 against 44.5 at 40 %, +15 points), and with the whole
budget it ends 4 points higher (68.7 against 64.5), finding its front among 120 trials instead of
32. Async successive halving promotes the first trials to reach a rung (with ``n < eta`` results
there is one slot and the first result takes it), and with two objectives most newcomers are
non-dominated at small ``n``, so about 18 % of MO-ASHA's trials run all 27 epochs (1/27 would in
synchronous halving); its hypervolume curve also flattens (+9 points over the last 60 % of the
epochs), so the first time it passes a fixed value moves a lot with small differences.

Rung rules and settings tried (``python -m benchmarks.bench_moasha --variants``, 6-8 min on 2
cores; the simulation is deterministic, so it reproduces these exactly). Seeds 0-11, the 12
seeds of the table above; "match" and "seed" as there; HV at 40 % (mean +- sd over the seeds) and
100 % (mean); "runs": trials per search; "full": the share of them run to the last epoch; "done":
trials completed by 40 % of the epochs. Rankings: the shipped rule (fronts, then crowding distance,
the newcomer first among ties, ``ceil(n / eta)`` slots); the newcomer last among ties; Syne Tune's
``MOASHA`` test ``rank / n <= 1 / eta``; ASHA's ``floor(n / eta)`` slots (Li et al.; AutoGluon's
MO-ASHA), so nothing continues from a rung with fewer than ``eta`` records; a minimum number of
records before anyone continues; each front ordered as an epsilon-net (farthest-point traversal on
the rung's normalised values, seeded by the best on ``spatial_acc`` as Syne Tune's
``NonDominatedPriority`` does, or by the earliest record as AutoGluon's MO-ASHA does) or by
hypervolume contribution (on normalised values from a reference point ``margin`` below the rung's
worst). Diagnostics: "oracle rungs" report every trial's true final values before its last
epoch (no noise, no deception: an upper bound on any ranking of the rung records); "noise-free
curves" drop the evaluation noise but keep the slow start of ramped curricula::

    variant (grace 1, eta 3 unless given)        match  seed  HV @40%      @100% runs full done
    no early stopping (the baseline)              100%   99%  44.5 +- 9.2   64.5   32 100% 11.0
    SHIPPED: ceil(n/eta), crowding, newcomer 1st   59%   72%  59.3 +- 4.9   68.7  120  18%  8.2
    newcomer last among ties                       75%   67%  55.1 +- 7.6   67.0  128  16%  6.6
    Syne Tune's rank/n <= 1/eta                    66%   69%  59.5 +- 5.0   67.9  130  15%  7.5
    floor(n/eta) slots (ASHA's top_k)              83%   82%  48.2 +- 10.3  67.0  170   9%  3.3
    min 2 records at the rung                      58%   57%  57.9 +- 4.1   68.3  122  16%  6.6
    min 3 (= eta) records at the rung              75%   58%  51.3 +- 12.2  66.4  157  11%  4.4
    eps-net (seed: best objective 0)               52%   57%  59.4 +- 6.0   69.9  134  15%  7.7
    eps-net (seed: earliest record)                82%   77%  55.6 +- 7.1   66.7  143  13%  5.8
    eps-net, floor slots                         never never  28.5 +- 21.1  63.8  214   6%  1.8
    HV contrib. (margin 0.1)                       51%   54%  60.6 +- 2.2   68.3  116  18%  7.8
    HV contrib. (margin 1)                         58%   57%  58.0 +- 6.2   70.1  118  18%  7.8
    HV contrib., floor slots                     never never  40.3 +- 20.1  63.8  183   8%  2.3
    crowding, grace 1, eta 2                       58%   61%  57.3 +- 6.8   69.8   85  28%  9.2
    eps-net, grace 1, eta 2                        49%   57%  60.6 +- 7.8   72.3   96  23%  8.0
    HV contrib., grace 1, eta 2                    58%   61%  58.5 +- 6.8   71.6   88  26%  8.8
    crowding, grace 1, eta 2.5                     53%   51%  59.2 +- 5.2   72.5  103  21%  8.4
    eps-net, grace 1, eta 2.5                      59%   58%  58.5 +- 5.7   71.0  109  18%  7.6
    HV contrib., grace 1, eta 2.5                  63%   71%  58.5 +- 5.6   68.5  113  18%  7.8
    crowding, grace 1, eta 4                       77%   63%  56.0 +- 7.2   67.0  202   7%  6.2
    eps-net, grace 1, eta 4                        89% never  50.6 +- 7.5   66.4  194   7%  5.1
    HV contrib., grace 1, eta 4                    71%   55%  56.5 +- 10.2  67.8  201   6%  6.0
    crowding, grace 2, eta 2                       69%   67%  54.0 +- 8.2   68.8   66  36%  8.3
    eps-net, grace 2, eta 2                        57%   56%  56.0 +- 8.9   70.2   72  32%  8.0
    HV contrib., grace 2, eta 2                    65%   71%  53.9 +- 8.1   69.5   64  37%  8.8
    crowding, grace 2, eta 3                       67%   73%  56.5 +- 6.7   67.3   94  17%  6.6
    eps-net, grace 2, eta 3                        77%   76%  55.4 +- 8.8   68.3  102  15%  5.5
    HV contrib., grace 2, eta 3                    49%   60%  60.3 +- 4.8   69.9   98  16%  6.6
    crowding, grace 3, eta 3                       61%   80%  57.7 +- 5.0   70.1   71  31%  8.0
    eps-net, grace 3, eta 3                        62%   59%  58.6 +- 6.5   70.4   75  29%  7.3
    HV contrib., grace 3, eta 3                    72%   81%  56.7 +- 6.7   68.2   74  30%  7.8
    random sampler + shipped rule                  57%   55%  60.1 +- 6.3   70.7  200   9%  7.8
    oracle rungs, crowding                         50%   47%  61.2 +- 5.1   75.2  100  23%  8.2
    oracle rungs, eps-net                          54%   58%  58.6 +- 4.3   74.9  107  22%  7.8
    oracle rungs, floor slots                      81%   77%  47.8 +- 17.8  68.0  162  11%  3.8
    oracle rungs, crowding, eta 2                  61%   71%  58.3 +- 5.9   70.7   70  38%  9.4
    oracle rungs, crowding, eta 6                  48%   50%  59.8 +- 6.5   74.8  173  12%  7.4
    oracle rungs, crowding, grace 3                56%   63%  59.4 +- 5.2   73.7   72  31%  7.9
    oracle, rung at epoch 1 only, front 0 only     45%   43%  61.3 +- 8.9   74.7   84  35%  9.9
    noise-free curves, crowding                    65%   63%  59.6 +- 4.5   68.9  104  21%  8.4
    noise-free curves, eps-net                     59%   58%  57.8 +- 7.0   69.5  118  18%  7.6

With sd 5-8 over 12 seeds the standard error of a mean HV is about 2 points, and "match" moves
by 10-20 points with it (the curve is flat there): the best-looking rows (eps-net eta 2 49 %,
HV contribution 49-51 %) are within noise of the shipped rule. ``--validate`` (2.5 min) re-ran the
rankings on 36 fresh seeds (12-47; no early stopping ends at 63.8 there, 43.6 at 40 %):

    variant                          match  seed  HV @40%      HV @100%
    SHIPPED (crowding)                 65%   66%  56.1 +- 6.2  67.7 +- 3.9
    eps-net (seed: best objective 0)   65%   66%  56.1 +- 9.1  67.7 +- 5.7
    HV contribution (margin 0.1)       72%   67%  56.8 +- 5.6  66.7 +- 4.4
    HV contribution (margin 1)         62%   57%  56.3 +- 6.5  68.0 +- 5.4

so the order within a front does not matter on this problem and crowding distance stays (no
reference point, scale-free; see :class:`tune_jobs.schedulers.MOASHAScheduler`). Floor slots
and a minimum of ``eta`` records are clearly worse (a minimum of 2 is within noise): in the
stopping variant a trial that may not continue yet is lost, so they complete fewer trials by
40 % (1.8-4.4 instead of 8.2).

Why no rung rule meets 40 % here: with oracle rungs (perfect information) MO-ASHA still needs
45-81 % of the epochs and reaches at most 61.3 at 40 %, 3 points short of 64.5. What limits it at
40 % is not the ranking but how many full trials fit in 346 epochs (about 8 completed, at 27
epochs each, 4 workers) and how good the proposals of a TPE that has seen so few completed trials
are. The real job behaves no better: see ``bench_moasha_quickstart.py``.

Where the epochs go (``--workers``, 1.6 min): the shipped rule, noise-free curves and oracle
rungs with 1, 2, 4 and 8 trials at a time, seeds 0-11, columns as in ``--variants`` (match, per
seed, HV @40 %, HV @100 %; no early stopping's final HV is 65.1, 64.1, 64.5 and 64.9):

    workers   shipped rule               noise-free curves          oracle rungs
    1         56%  58%  60.1  69.1       59%  67%  61.4  69.2       43%  43%  62.9  77.3
    2         59%  52%  56.7  69.4       56%  50%  58.6  69.3       44%  44%  62.5  77.1
    4         59%  72%  59.3  68.7       65%  63%  59.6  68.9       50%  47%  61.2  75.2
    8         73%  72%  53.4  68.7       70%  66%  53.9  70.0       61%  62%  55.7  72.2

    ideal serial scheduler (random configs, final values known after one epoch, runs to the
    end only the configs a greedy hypervolume selection needs): median 18 % (11-26 %)

So the target is not out of reach of early stopping as such: a scheduler that knew every
config's final values after one epoch would need about 18 %. ASHA's rule with the same perfect
information needs 43 % serially and more with every worker added, for two reasons that no
ranking removes. A trial is judged against the records its rung has *so far*, so the first
arrivals continue (``ceil(n / eta)`` slots) and, with 4 workers, 23 % of the trials run to the
end, against the 1/27 of synchronous halving. And the more trials run at once, the fewer
records a rung holds when a trial reaches it (the trials started with it are still running)
and the more epochs are tied up in unfinished trials at any moment (8 workers: 61 %). The
curves' slow start and their noise cost another 10-15 points (shipped against oracle).

Nor does the size of the search help, or longer trials, closer to the paper's 120 epochs, with
rungs at 1, 3, 9 and 27 of 81 (``--budgets``, 2.3 min; MO-ASHA's match, per seed, HV at 40 %
and 100 %, then no early stopping's HV at 40 % and 100 %):

    16 trials x 27 epochs, 12 seeds           58%  57%    39.4  62.9   (none 29.8  52.9)
    32 trials x 27 epochs, 12 seeds           59%  72%    59.3  68.7   (none 44.5  64.5)
    64 trials x 27 epochs, 8 seeds            67%  never  68.0  73.5   (none 60.8  72.2)
    32 trials x 81 epochs, 8 seeds            62%  64%    60.0  69.0   (none 48.0  65.2)
    32 trials x 81 epochs, 8 seeds, grace 3   57%  52%    60.0  69.0   (none 48.0  65.2)

With more trials no early stopping's front fills in, and MO-ASHA's lead at the end shrinks from
10 to 1.3 points.

Nor does ASHA's *promotion* type (``--promotion``, 4.2 min; :func:`simulate_promotion`: trials
pause at every rung and a freed worker resumes the best-ranked one not yet promoted, so no
decision is made on too few records). Same seeds and columns as ``--variants``:

    variant (TPE; the random sampler gives the same match)   match  seed  HV @40%      @100%
    promotion, floor(n/eta) slots, grace 1, eta 3             53%   52%   60.1 +- 7.4  71.8
    promotion, ceil(n/eta) slots, grace 1, eta 3              53%   56%   60.3 +- 5.6  72.2
    promotion, floor slots, grace 1, eta 2                    51%   51%   61.2 +- 5.3  73.5
    promotion, grace 3 or eta 4, floor or ceil slots         55-74% 58-74% 47.8-60.3   69.3-71.2

It ends about 3 points higher than the shipped stopping type (71.8 against 68.7 at grace 1, eta
3), but it still needs more than half of the epochs to match. It is not shipped: in Ray Tune it
would pause trials through checkpoints and keep their Optuna trials RUNNING until the end of the
search, for a gain within two standard errors.

Reading B of the target: the same number of trials (``--same-trials``, 0.7 min on 2 cores).
Everything above gives every method the same *epochs* (reading A). Read instead as "the same
trials, at most 40 % of the epochs", both searches run the same ``N`` trials (``simulate(...,
max_trials=N)``, each until all ``N`` have ended, nothing cut): no early stopping spends ``N *
27`` epochs, MO-ASHA fewer, and the question is whether it keeps the final HV. With the random
sampler both draw the same ``N`` configs in the same order (checked per seed: "same" is how many
of the first configs agree, on average), so MO-ASHA completes a subset of no early stopping's
trials and can at best tie; with TPE the first 13-24 agree (13.6 on average), then they differ.
Seeds 0-11 (main table) and 12-47 (``--validate``'s); "epochs": MO-ASHA's, % of ``N * 27``,
mean (min-max over seeds); HV: final, as above, mean +- sd; "diff": MO-ASHA's minus no early
stopping's per seed, mean +- standard error; ">=": seeds on which MO-ASHA's final HV is at least
no early stopping's; "front": no early stopping's front members (Pareto-optimal on true values
among its ``N`` trials) that MO-ASHA stopped early, of the front's size (random sampler only);
"full": MO-ASHA's trials run to the last epoch (means per seed)::

    N = 32 trials each, no early stopping 864 epochs; 4 workers, grace 1, eta 3
    sampler  seeds  epochs        HV no ES     HV MO-ASHA   diff +- se   >=    same  front    full
    random   0-11   27% (18-41%)  59.6 +- 7.2  56.0 +- 8.1  -3.6 +- 1.3  2/12  32.0  1.4/4.7  6.6
    random   12-47  24% (12-40%)  58.3 +- 6.8  53.6 +- 6.9  -4.7 +- 1.1  4/36  32.0  1.8/4.6  5.8
    random   0-47   24% (12-41%)  58.6 +- 6.8  54.2 +- 7.2  -4.4 +- 0.9  6/48  32.0  1.7/4.6  6.0
    TPE      0-11   33% (21-45%)  64.5 +- 4.7  58.9 +- 5.5  -5.6 +- 1.6  2/12  13.3  -        8.4
    TPE      12-47  30% (14-52%)  63.8 +- 5.3  55.3 +- 6.7  -8.5 +- 1.2  2/36  13.7  -        7.6
    TPE      0-47   31% (14-52%)  64.0 +- 5.1  56.2 +- 6.6  -7.8 +- 1.0  4/48  13.6  -        7.8

    N = 64 trials each, no early stopping 1728 epochs; 4 workers, grace 1, eta 3
    sampler  seeds  epochs        HV no ES     HV MO-ASHA   diff +- se   >=    same  front    full
    random   0-11   22% (17-27%)  65.3 +- 4.8  63.2 +- 5.0  -2.1 +- 0.7  4/12  64.0  1.9/6.8  9.8
    random   12-47  19% (10-27%)  66.5 +- 4.6  59.7 +- 6.7  -6.8 +- 1.1  2/36  64.0  3.1/6.4  8.0
    random   0-47   20% (10-27%)  66.2 +- 4.6  60.6 +- 6.5  -5.7 +- 0.9  6/48  64.0  2.8/6.5  8.5
    TPE      0-11   28% (16-40%)  71.4 +- 5.1  65.0 +- 3.8  -6.4 +- 1.1  0/12  13.3  -        13.5
    TPE      12-47  27% (12-39%)  71.7 +- 4.4  63.0 +- 6.2  -8.7 +- 1.3  4/36  13.7  -        12.8
    TPE      0-47   27% (12-40%)  71.6 +- 4.5  63.5 +- 5.7  -8.1 +- 1.0  4/48  13.6  -        13.0

Reading B is **not met either**, the other way round: MO-ASHA spends about a quarter of the
epochs (24 % random, 31 % TPE at 32 trials; more than 40 % on 1 and 9 of the 48 seeds), but it
ends 4.4 +- 0.9 (random) and 7.8 +- 1.0 (TPE) points *below* no early stopping, and ties or beats
it on 6 and 4 of 48 seeds. With the same configs the loss is exactly the front members it stops:
1.7 of 4.6 per seed (the 6 ties are the seeds where it stopped none; the rungs at 1, 3 and 9
epochs see noisy, partly deceptive curves and few records). TPE loses more, likely because
it learns from the ~8 trials MO-ASHA completes (the stopped ones are PRUNED, without values)
instead of 32. A larger search does not close the gap (64 trials: 20 % and 27 % of the epochs,
-5.7 +- 0.9 and -8.1 +- 1.0 points). So MO-ASHA's advantage on this problem comes from running
more trials in the same epochs (reading A: 68.7 against 64.5 with the whole budget), not from
stopping the same trials early without loss.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.hypervolume import hypervolume
from benchmarks._harness import Result, format_table, local_ray

SCHEDULES = ("constant", "step", "linear", "cosine", "exponential")
# how much a schedule kind ramps its budgets up (0: constant from the first epoch)
RAMP = {"constant": 0.0, "step": 0.6, "linear": 0.8, "cosine": 1.0, "exponential": 0.5}
OBJECTIVES = (("spatial_acc", "max"), ("adv_acc", "max"))
REFERENCE = (0.0, 0.0)  # of the hypervolume: both accuracies are at least 0
TARGET_RATIO = 2.5  # B / epochs to match: at most 40 % of the epochs


# -- the synthetic problem ---------------------------------------------------------------------


def search_space() -> dict[str, Any]:
    """The searched parameters, as Optuna distributions (``OptunaSearch(space=...)``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    return {
        "theta_max": FloatDistribution(0.0, 180.0),
        "eps_max": FloatDistribution(0.0, 0.3),
        "schedule": CategoricalDistribution(SCHEDULES),
        "start_frac": FloatDistribution(0.0, 1.0),
        "lr": FloatDistribution(0.005, 0.2, log=True),
    }


@dataclass(frozen=True)
class SyntheticCurricula:
    """Learning curves of two robust accuracies over curriculum parameters (see the module
    docstring). Pure functions of a config (a mapping with the :func:`search_space` keys)."""

    epochs: int = 27
    epoch_noise: float = 0.015
    final_noise: float = 0.005

    @staticmethod
    def _ramp(config: Mapping[str, Any]) -> float:
        return RAMP[config["schedule"]] * (1.0 - 0.6 * config["start_frac"])

    def target(self, config: Mapping[str, Any]) -> np.ndarray:
        """``(spatial_acc, adv_acc)`` after the last epoch, without noise."""
        u = config["theta_max"] / 180.0
        v = config["eps_max"] / 0.3
        quality = math.exp(-((math.log10(config["lr"] / 0.05)) ** 2) / (2 * 0.3**2))
        scale = quality * (0.85 + 0.15 * self._ramp(config))
        spatial = 0.1 + 0.85 * scale * math.sqrt(u) * (1.0 - 0.6 * v**2)
        adversarial = 0.02 + 0.85 * scale * v**0.7 * (1.0 - 0.4 * u**2)
        return np.array([spatial, adversarial])

    def tau(self, config: Mapping[str, Any]) -> float:
        """The learning curve's time constant in epochs: larger for ramped curricula and small
        learning rates."""
        speed = (0.05 / config["lr"]) ** 0.3
        return 0.15 * self.epochs * speed * (1.0 + 0.8 * self._ramp(config))

    def mean(self, config: Mapping[str, Any], epoch: int) -> np.ndarray:
        """The noise-free objectives after ``epoch`` epochs (``target`` at the last)."""
        tau = self.tau(config)
        progress = (1.0 - math.exp(-epoch / tau)) / (1.0 - math.exp(-self.epochs / tau))
        return self.target(config) * progress

    def report(self, config: Mapping[str, Any], epoch: int, rng: np.random.Generator) -> dict:
        """What the trainable reports after ``epoch``: noisy objectives, ``epoch``, ``final``."""
        final = epoch >= self.epochs
        noise = self.final_noise if final else self.epoch_noise
        values = np.clip(self.mean(config, epoch) + rng.normal(0.0, noise, 2), 0.0, 1.0)
        return {"epoch": epoch, "spatial_acc": values[0], "adv_acc": values[1], "final": final}


def true_front_hypervolume(problem: SyntheticCurricula, samples: int = 200_000) -> float:
    """The hypervolume of the problem's true front: both objectives peak, for every
    ``(theta_max, eps_max)``, at ``lr = 0.05`` with a full ramp (cosine from 0), so the front is
    that of those configs, sampled densely over ``(theta_max, eps_max)``."""
    rng = np.random.default_rng(12345)
    configs = [
        {
            "theta_max": t,
            "eps_max": e,
            "schedule": "cosine",
            "start_frac": 0.0,
            "lr": 0.05,
        }
        for t, e in zip(rng.uniform(0, 180, samples), rng.uniform(0, 0.3, samples), strict=True)
    ]
    return hypervolume(np.array([problem.target(c) for c in configs]), REFERENCE)


# -- methods -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """A sampler and a scheduler kind (``none``: every trial runs all epochs)."""

    name: str
    sampler: str  # "tpe" or "random"
    scheduler: str  # "none", "moasha" or "asha"

    def make_sampler(self, seed: int) -> Any:
        import optuna

        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def make_scheduler(self, epochs: int, grace: int, eta: float) -> Any:
        from tune_jobs.schedulers import make_scheduler
        from tune_jobs.spec import Objective, SchedulerSettings

        objectives = tuple(Objective(metric, mode) for metric, mode in OBJECTIVES)
        metric = OBJECTIVES[0][0] if self.scheduler == "asha" else None
        settings = SchedulerSettings(self.scheduler, grace, eta, metric)
        return make_scheduler(settings, objectives, epochs)


METHODS = (
    Method("moasha", "tpe", "moasha"),
    Method("none", "tpe", "none"),
    Method("random", "random", "none"),
    Method("random + moasha", "random", "moasha"),
    Method("asha (spatial_acc)", "tpe", "asha"),
)


def make_searcher(method: Method, seed: int) -> Any:
    """The production searcher (no journal), on the synthetic space."""
    from tune_jobs._optuna import JournaledOptunaSearch

    return JournaledOptunaSearch(
        space=search_space(),
        metric=[metric for metric, _ in OBJECTIVES],
        mode=[mode for _, mode in OBJECTIVES],
        sampler=method.make_sampler(seed),
    )


@dataclass
class Trace:
    """Hypervolume (true values of completed trials) after each completion, by epochs spent."""

    epochs: list[int] = field(default_factory=lambda: [0])
    hypervolume: list[float] = field(default_factory=lambda: [0.0])
    trials: int = 0
    stopped: int = 0
    wall_s: float = 0.0
    front: list[np.ndarray] = field(default_factory=list)  # true values of completed trials
    spent: int = 0  # epochs spent in all (set by simulate)
    configs: list[dict] = field(default_factory=list)  # every trial's config, in start order
    full: list[bool] = field(default_factory=list)  # per trial: ran to its last epoch

    def complete(self, spent: int, values: np.ndarray, front_hv: float) -> None:
        """Record a trial that completed its last epoch once ``spent`` epochs were spent, with
        its true final ``values``; ``front_hv`` is the true front's hypervolume (100 %)."""
        self.front.append(values)
        self.epochs.append(spent)
        self.hypervolume.append(100.0 * hypervolume(np.array(self.front), REFERENCE) / front_hv)

    def at(self, spent: float) -> float:
        """The hypervolume reached once ``spent`` epochs were spent."""
        index = int(np.searchsorted(self.epochs, spent, side="right")) - 1
        return self.hypervolume[max(index, 0)]


def _tell(searcher: Any, trial_id: str, result: dict | None) -> None:
    """``on_trial_complete`` as Tune calls it, with the PRUNED rule applied (idempotent when the
    searcher applies it itself)."""
    from tune_jobs.schedulers import stopped_early

    searcher.on_trial_complete(trial_id, None if stopped_early(result) else result)


def simulate(
    method: Method,
    problem: SyntheticCurricula,
    seed: int,
    budget: int,
    workers: int,
    grace: int,
    eta: float,
    front_hv: float,
    max_trials: int | None = None,
) -> Trace:
    """Run ``method`` on ``problem`` with ``workers`` simulated asynchronous workers (see the
    module docstring).

    Without early stopping the run has ``budget // problem.epochs`` trials and runs them all to
    their last epoch (exactly ``budget`` epochs); with it, trials start while fewer than
    ``budget`` epochs were spent and the run ends when ``budget`` is reached, cutting the trials
    still running. ``max_trials`` (``--same-trials``) caps the trials started, with or without
    early stopping; the run then also ends when they have all ended.
    """
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    searcher = make_searcher(method, seed)
    scheduler = method.make_scheduler(problem.epochs, grace, eta)
    trace = Trace()
    configs: dict[str, dict] = {}
    pace: dict[str, float] = {}
    events: list[tuple[float, int, str, int]] = []  # (time, tie-break, trial id, epoch)
    spent = 0
    counter = 0
    if max_trials is None and method.scheduler == "none":
        max_trials = budget // problem.epochs
    done: set[str] = set()  # trials that ran to their last epoch

    def start(now: float) -> None:
        nonlocal counter
        trial_id = f"t{counter:05d}"
        counter += 1
        configs[trial_id] = searcher.suggest(trial_id)
        pace[trial_id] = float(rng.lognormal(0.0, 0.2))
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
        heapq.heappush(events, (now + pace[trial_id], counter, trial_id, 1))

    for _ in range(workers):
        start(0.0)
    while events and spent < budget:
        now, _, trial_id, epoch = heapq.heappop(events)
        spent += 1
        trial = SimpleNamespace(trial_id=trial_id)
        result = problem.report(configs[trial_id], epoch, rng)
        decision = scheduler.on_trial_result(None, trial, result)
        if epoch < problem.epochs and decision == TrialScheduler.CONTINUE:
            heapq.heappush(events, (now + pace[trial_id], counter, trial_id, epoch + 1))
            counter += 1
            continue
        scheduler.on_trial_complete(None, trial, result)
        _tell(searcher, trial_id, result)
        trace.trials += 1
        if epoch < problem.epochs:
            trace.stopped += 1
        else:
            done.add(trial_id)
            trace.complete(spent, problem.target(configs[trial_id]), front_hv)
        if spent < budget and (max_trials is None or len(configs) < max_trials):
            start(now)
    trace.spent = spent
    trace.configs = list(configs.values())
    trace.full = [trial_id in done for trial_id in configs]
    trace.wall_s = time.perf_counter() - began
    return trace


# -- the same loop through a real Ray Tune ------------------------------------------------------


def tune_run(
    method: Method,
    problem: SyntheticCurricula,
    seed: int,
    budget: int,
    workers: int,
    grace: int,
    eta: float,
    front_hv: float,
    storage: str,
) -> Trace:
    """``method`` through a real ``Tuner`` (function trainable, ``ConcurrencyLimiter``,
    ``reuse_actors``, the scheduler-state callback), with the budget of :func:`simulate`:
    ``budget // epochs`` trials without early stopping, else until ``budget`` epochs were
    reported (a ``Stopper``). Epochs are counted in the order the driver received the results.
    """
    import zlib

    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from tune_jobs.schedulers import SchedulerStateCallback

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    began = time.perf_counter()
    scheduler = method.make_scheduler(problem.epochs, grace, eta)

    def trainable(config: dict) -> None:
        rng = np.random.default_rng(zlib.crc32(repr(sorted(config.items())).encode()))
        for epoch in range(1, problem.epochs + 1):
            tune.report(problem.report(config, epoch, rng))

    class Recorder(tune.Callback):
        """Every result in the order the driver got it: (trial id, config, final)."""

        def __init__(self) -> None:
            self.results: list[tuple[str, dict, bool]] = []

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            self.results.append((trial.trial_id, dict(trial.config), bool(result["final"])))

    class Budget(tune.Stopper):
        def __init__(self, recorder: Recorder) -> None:
            self.recorder = recorder

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return len(self.recorder.results) >= budget

    recorder = Recorder()
    full = method.scheduler == "none"
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 2 / workers}),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(make_searcher(method, seed), max_concurrent=workers),
            scheduler=scheduler,
            num_samples=budget // problem.epochs if full else -1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"bench-{method.scheduler}-{seed}",
            storage_path=storage,
            stop=None if full else Budget(recorder),
            callbacks=[recorder, SchedulerStateCallback(scheduler)],
            verbose=0,
        ),
    )
    previous = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # verbose=0 is silent with the old output only
    try:
        tuner.fit()
    finally:
        if previous is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = previous
    trace = Trace(wall_s=time.perf_counter() - began)
    last: dict[str, bool] = {}
    for spent, (trial_id, config, final) in enumerate(recorder.results[:budget], start=1):
        last[trial_id] = final
        if final:
            trace.complete(spent, problem.target(config), front_hv)
    trace.trials = len(last)
    trace.stopped = sum(not final for final in last.values())
    return trace


# -- summary -----------------------------------------------------------------------------------


def mean_curve(traces: Sequence[Trace], grid: np.ndarray) -> np.ndarray:
    return np.array([[trace.at(t) for t in grid] for trace in traces]).mean(axis=0)


def epochs_to_reach(curve: np.ndarray, grid: np.ndarray, level: float) -> float:
    """The first point of ``grid`` where ``curve`` reaches ``level`` (NaN if never)."""
    reached = np.flatnonzero(curve >= level - 1e-9)
    return float(grid[reached[0]]) if len(reached) else math.nan


@dataclass(frozen=True)
class Settings:
    epochs: int = 27
    trials: int = 32
    workers: int = 4
    seeds: int = 12
    grace: int = 1
    eta: float = 3.0

    @property
    def budget(self) -> int:
        return self.trials * self.epochs


def measure(settings: Settings, methods: Sequence[Method] = METHODS) -> dict[str, list[Trace]]:
    problem = SyntheticCurricula(epochs=settings.epochs)
    front_hv = true_front_hypervolume(problem)
    traces: dict[str, list[Trace]] = {}
    for method in methods:
        traces[method.name] = [
            simulate(
                method,
                problem,
                seed,
                settings.budget,
                settings.workers,
                settings.grace,
                settings.eta,
                front_hv,
            )
            for seed in range(settings.seeds)
        ]
    return traces


def _fmt(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} +- {statistics.stdev(values):.1f}"


def seed_fractions(runs: Sequence[Trace], baseline: Sequence[Trace], budget: int) -> list[float]:
    """Per seed: the fraction of ``budget`` after which ``runs[i]`` reaches the final
    hypervolume of ``baseline[i]`` (the same seed without early stopping); inf if never."""
    grid = np.arange(0, budget + 1)
    fractions = []
    for run, base in zip(runs, baseline, strict=True):
        curve = np.array([run.at(t) for t in grid])
        reach = epochs_to_reach(curve, grid, base.at(budget))
        fractions.append(math.inf if math.isnan(reach) else reach / budget)
    return fractions


def table(settings: Settings, traces: Mapping[str, list[Trace]]) -> str:
    """Mean +- sd hypervolume at fractions of the budget, and epochs to match no early
    stopping's final hypervolume, per method."""
    budget = settings.budget
    grid = np.arange(0, budget + 1)
    goal = mean_curve(traces["none"], grid)[-1]
    fractions = (0.1, 0.25, 0.4, 1.0)
    header = [
        "method",
        *(f"HV @{int(f * 100)}%" for f in fractions),
        "to match",
        "per seed",
        "trials",
        "stopped",
    ]
    rows = [header]
    for name, runs in traces.items():
        hv = [_fmt([run.at(f * budget) for run in runs]) for f in fractions]
        reach = epochs_to_reach(mean_curve(runs, grid), grid, goal)
        match = "never" if math.isnan(reach) else f"{reach / budget:.0%}"
        per_seed = statistics.median(seed_fractions(runs, traces["none"], budget))
        per_seed_text = "never" if math.isinf(per_seed) else f"{per_seed:.0%}"
        trials = statistics.mean(run.trials for run in runs)
        stopped = statistics.mean(run.stopped / max(run.trials, 1) for run in runs)
        rows.append([name, *hv, match, per_seed_text, f"{trials:.0f}", f"{stopped:.0%}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def results(
    prefix: str, budget: int, traces: Mapping[str, Sequence[Trace]], note: str, hv_unit: str
) -> list[Result]:
    """The rows of a comparison: for every method but ``none``, the epochs its mean HV curve
    takes to reach no early stopping's final mean HV (the target row for ``moasha``), then
    MO-ASHA's HV at 40 % of the budget against no early stopping's at 100 %."""
    grid = np.arange(0, budget + 1)
    goal = mean_curve(traces["none"], grid)[-1]
    rows = []
    for name, runs in traces.items():
        if name == "none":
            continue
        reach = epochs_to_reach(mean_curve(runs, grid), grid, goal)
        ours = math.inf if math.isnan(reach) else reach
        is_target = name == "moasha"
        rows.append(
            Result(
                f"{prefix}/{name}: epochs to reach no-ES final HV",
                ours,
                float(budget),
                unit="epochs",
                target=f">= {TARGET_RATIO:g}x" if is_target else "",
                ok=(budget / ours >= TARGET_RATIO) if is_target else None,
                note=note if is_target else "",
                extra={
                    "hv_at_40%": [run.at(0.4 * budget) for run in runs],
                    "hv_at_100%": [run.at(budget) for run in runs],
                    "per_seed_fraction": seed_fractions(runs, traces["none"], budget),
                },
            )
        )
    moasha = statistics.mean(run.at(0.4 * budget) for run in traces["moasha"])
    none = statistics.mean(run.at(budget) for run in traces["none"])
    rows.append(
        Result(
            f"{prefix}/moasha: HV at 40% of the epochs vs no-ES at 100%",
            moasha,
            none,
            unit="% HV",
            target="ours >= baseline",
            ok=moasha >= none,
            note=f"mean over seeds; HV in % of {hv_unit}",
            higher_is_better=True,
        )
    )
    return rows


def run(quick: bool, device: str) -> list[Result]:
    """The benchmark: the simulation (both modes) and, in full mode, a real Ray Tune check."""
    settings = Settings(seeds=4, trials=24) if quick else Settings()
    traces = measure(settings)
    print(table(settings, traces), file=sys.stderr, flush=True)
    note = (
        f"simulated asynchronous Tune loop, {settings.workers} workers, {settings.seeds} seeds, "
        f"{settings.trials} trials x {settings.epochs} epochs = {settings.budget} epochs budget, "
        f"grace {settings.grace}, eta {settings.eta:g}; ours: epochs until MO-ASHA's mean HV "
        "reaches no early stopping's final mean HV"
    )
    rows = results("moasha", settings.budget, traces, note, "the synthetic problem's true front")
    if not quick:
        rows.extend(_real_tune_check(settings))
    return rows


def _real_tune_check(settings: Settings) -> list[Result]:
    import tempfile

    local_ray()
    problem = SyntheticCurricula(epochs=settings.epochs)
    front_hv = true_front_hypervolume(problem)
    traces = {}
    with tempfile.TemporaryDirectory(prefix="bench-moasha-") as storage:
        for method in METHODS[:2]:
            traces[method.name] = tune_run(
                method,
                problem,
                0,
                settings.budget,
                settings.workers,
                settings.grace,
                settings.eta,
                front_hv,
                storage,
            )
    budget = settings.budget
    moasha, none = traces["moasha"], traces["none"]
    print(
        "real Ray Tune, seed 0: "
        + "; ".join(
            f"{name}: {t.trials} trials, {t.stopped} stopped, HV@40% {t.at(0.4 * budget):.1f}, "
            f"HV@100% {t.at(budget):.1f}, {t.wall_s:.0f} s"
            for name, t in traces.items()
        ),
        file=sys.stderr,
        flush=True,
    )
    return [
        Result(
            "moasha/real Ray Tune, seed 0: HV at 40% vs no-ES at 100%",
            moasha.at(0.4 * budget),
            none.at(budget),
            unit="% HV",
            higher_is_better=True,
            note=(
                f"one seed through a real Tuner: moasha {moasha.trials} trials "
                f"({moasha.stopped} stopped, {moasha.wall_s:.0f} s), none {none.trials} trials "
                f"({none.wall_s:.0f} s)"
            ),
        )
    ]


# -- rung-rule variants: measured, not shipped -----------------------------------------------

# A rung rule decides whether the newcomer ``index`` among the ``points`` recorded at a rung (every
# objective maximised, in the order they were recorded) continues, given the reduction factor.
RungRule = Callable[[np.ndarray, int, float], bool]


def floor_slots(n: int, eta: float) -> int:
    """ASHA's ``top_k(rung, n / eta)`` (Li et al.; AutoGluon's MO-ASHA): ``floor(n / eta)``,
    so nothing continues from a rung with fewer than ``eta`` records."""
    return int(math.floor(n / eta + 1e-9))


def _position(order: Sequence[int], index: int) -> int:
    return int(np.flatnonzero(np.asarray(order) == index)[0])


def _normalised(points: np.ndarray) -> np.ndarray:
    """Each objective scaled to [0, 1] over the rung's records (scale-free distances)."""
    low, high = points.min(axis=0), points.max(axis=0)
    return (points - low) / np.where(high > low, high - low, 1.0)


def eps_net_order(points: np.ndarray, favoured: int | None, seed_dim: int | None = 0) -> list[int]:
    """Non-dominated fronts, each ordered as an epsilon-net (farthest-point traversal, Clarkson
    2005; Syne Tune's ``NonDominatedPriority``, AutoGluon's MO-ASHA ``eps_net``): the front's
    best point on objective ``seed_dim`` first (the earliest recorded one when ``None``), then
    repeatedly the point farthest (Euclidean, on :func:`_normalised` values) from those
    already chosen. ``favoured`` is unused: distances rarely tie."""
    from tune_jobs._mo_ranking import non_dominated_fronts

    del favoured
    x = _normalised(points)
    fronts = non_dominated_fronts(points)
    order: list[int] = []
    for front in np.unique(fronts):
        members = list(np.flatnonzero(fronts == front))
        first = members[0] if seed_dim is None else members[int(np.argmax(x[members, seed_dim]))]
        chosen = [first]
        left = [m for m in members if m != first]
        while left:
            gaps = np.linalg.norm(x[left][:, None, :] - x[chosen][None, :, :], axis=2).min(axis=1)
            chosen.append(left.pop(int(np.argmax(gaps))))
        order.extend(int(m) for m in chosen)
    return order


def hv_contribution_order(
    points: np.ndarray, favoured: int | None, margin: float = 0.1
) -> np.ndarray:
    """Non-dominated fronts, each by exclusive hypervolume contribution (largest first), on
    :func:`_normalised` values from the reference point ``-margin`` on every objective (the
    margin decides what the front's extremes contribute); ``favoured`` first among ties."""
    from tune_jobs._mo_ranking import non_dominated_fronts

    x = _normalised(points)
    fronts = non_dominated_fronts(points)
    reference = np.full(points.shape[1], -margin)
    contribution = np.zeros(len(points))
    for front in np.unique(fronts):
        members = np.flatnonzero(fronts == front)
        total = hypervolume(x[members], reference)
        for member in members:
            rest = x[members[members != member]]
            contribution[member] = total - (hypervolume(rest, reference) if len(rest) else 0.0)
    not_favoured = np.ones(len(points), dtype=bool)
    if favoured is not None:
        not_favoured[favoured] = False
    return np.lexsort((np.arange(len(points)), not_favoured, -contribution, fronts))


def rung_rule(
    order: Callable[..., Sequence[int]] | None = None,
    slots: str = "ceil",
    min_results: int = 0,
    newcomer_first: bool = True,
    **options: Any,
) -> RungRule:
    """A rung rule: rank the records with ``order`` (default: the shipped
    :func:`tune_jobs._mo_ranking.rank_order`, fronts then crowding distance) with the newcomer
    favoured among ties or not, and continue when it is within the first ``slots``:
    ``ceil`` (shipped, ``ceil(n / eta)``), ``floor`` (:func:`floor_slots`) or ``syne``
    (Syne Tune's MOASHA: ``rank / n <= 1 / eta``, one more than ``floor``); never with fewer
    than ``min_results`` records."""
    from tune_jobs._mo_ranking import promotion_slots, rank_order

    ranker = order or rank_order

    def rule(points: np.ndarray, index: int, eta: float) -> bool:
        points = np.asarray(points, dtype=float)
        n = len(points)
        if n < min_results:
            return False
        position = _position(ranker(points, index if newcomer_first else None, **options), index)
        if slots == "syne":
            return position / n <= 1.0 / eta
        allowed = promotion_slots(n, eta) if slots == "ceil" else floor_slots(n, eta)
        return position < allowed

    return rule


class OracleCurricula(SyntheticCurricula):
    """Diagnostic: before the last epoch every report is the config's *noise-free final*
    values, so rungs rank on perfect information (no noise, no deception); the last epoch
    reports as usual. An upper bound on what any ranking of the rung records can achieve."""

    def report(self, config: Mapping[str, Any], epoch: int, rng: np.random.Generator) -> dict:
        if epoch >= self.epochs:
            return super().report(config, epoch, rng)
        spatial, adversarial = self.target(config)
        return {"epoch": epoch, "spatial_acc": spatial, "adv_acc": adversarial, "final": False}


class NoiselessCurricula(SyntheticCurricula):
    """Diagnostic: per-epoch reports without evaluation noise (the deceptive curves stay)."""

    def report(self, config: Mapping[str, Any], epoch: int, rng: np.random.Generator) -> dict:
        if epoch >= self.epochs:
            return super().report(config, epoch, rng)
        spatial, adversarial = self.mean(config, epoch)
        return {"epoch": epoch, "spatial_acc": spatial, "adv_acc": adversarial, "final": False}


@dataclass(frozen=True)
class Variant:
    name: str
    rule: RungRule | None = None  # None: the shipped rule
    grace: int = 1
    eta: float = 3.0
    method: Method = METHODS[0]
    problem: type[SyntheticCurricula] = SyntheticCurricula
    promotion: str | None = None  # "floor" or "ceil": the promotion type (pause and resume)


def variants() -> list[Variant]:
    """Every rung rule and setting tried (``--variants``)."""
    eps = rung_rule(eps_net_order)
    hvc = rung_rule(hv_contribution_order)
    found = [
        Variant("shipped: ceil(n/eta), crowding, newcomer first"),
        Variant("newcomer last among ties", rung_rule(newcomer_first=False)),
        Variant("Syne Tune rank/n <= 1/eta", rung_rule(slots="syne", newcomer_first=False)),
        Variant("floor(n/eta) slots (ASHA top_k)", rung_rule(slots="floor")),
        Variant("min 2 records at the rung", rung_rule(min_results=2)),
        Variant("min 3 (= eta) records at the rung", rung_rule(min_results=3)),
        Variant("eps-net (seed: best objective 0)", eps),
        Variant("eps-net (seed: earliest record)", rung_rule(eps_net_order, seed_dim=None)),
        Variant("eps-net, floor slots", rung_rule(eps_net_order, slots="floor")),
        Variant("HV contribution (margin 0.1)", hvc),
        Variant("HV contribution (margin 1)", rung_rule(hv_contribution_order, margin=1.0)),
        Variant("HV contribution, floor slots", rung_rule(hv_contribution_order, slots="floor")),
    ]
    for grace, eta in [(1, 2), (1, 2.5), (1, 4), (2, 2), (2, 3), (3, 3)]:
        for label, rule in (("crowding", None), ("eps-net", eps), ("HV contribution", hvc)):
            found.append(Variant(f"{label}, grace {grace}, eta {eta:g}", rule, grace, eta))
    found += [
        Variant("random sampler + shipped rule", method=METHODS[3]),
        Variant("oracle rungs, crowding", problem=OracleCurricula),
        Variant("oracle rungs, eps-net", eps, problem=OracleCurricula),
        Variant("oracle rungs, floor slots", rung_rule(slots="floor"), problem=OracleCurricula),
        Variant("oracle rungs, crowding, eta 2", None, 1, 2.0, problem=OracleCurricula),
        Variant("oracle rungs, crowding, eta 6", None, 1, 6.0, problem=OracleCurricula),
        Variant("oracle rungs, crowding, grace 3", None, 3, 3.0, problem=OracleCurricula),
        Variant(
            "oracle, one rung at epoch 1, front 0 only",
            _front_zero_only,
            1,
            27.0,
            problem=OracleCurricula,
        ),
        Variant("noise-free curves, crowding", problem=NoiselessCurricula),
        Variant("noise-free curves, eps-net", eps, problem=NoiselessCurricula),
    ]
    return found


def promotion_variants() -> list[Variant]:
    """ASHA's promotion type with the shipped ranking, at several grace and eta
    (``--promotion``)."""
    found = []
    for grace, eta in [(1, 3), (3, 3), (1, 2), (1, 4)]:
        for slots in ("floor", "ceil"):
            for method in (METHODS[0], METHODS[3]):
                name = f"promotion, {slots} slots, grace {grace}, eta {eta:g}, {method.sampler}"
                found.append(Variant(name, None, grace, eta, method, promotion=slots))
    return found


def simulate_promotion(
    method: Method,
    problem: SyntheticCurricula,
    seed: int,
    budget: int,
    workers: int,
    grace: int,
    eta: float,
    front_hv: float,
    slots: str = "floor",
) -> Trace:
    """ASHA's *promotion* type (Li et al., 2020) with the multi-objective ranking: a trial pauses
    at every rung; a freed worker resumes the best-ranked trial not yet promoted among the top
    ``floor(n / eta)`` (or ``ceil``) records of the highest rung that has one, and otherwise
    starts a new trial. Same problem, workers, searcher and measures as :func:`simulate`; a
    paused trial is never told to the searcher (it may still be promoted)."""
    from tune_jobs._mo_ranking import promotion_slots, rank_order
    from tune_jobs.schedulers import rung_levels

    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    searcher = make_searcher(method, seed)
    rungs = [rung for rung in rung_levels(grace, eta, problem.epochs) if rung < problem.epochs]
    records: dict[int, list[tuple[str, np.ndarray]]] = {rung: [] for rung in rungs}
    promoted: dict[int, set[str]] = {rung: set() for rung in rungs}
    trace = Trace()
    configs: dict[str, dict] = {}
    pace: dict[str, float] = {}
    events: list[tuple[float, int, str, int]] = []
    spent = 0
    counter = 0

    def run_epoch(now: float, trial_id: str, epoch: int) -> None:
        nonlocal counter
        heapq.heappush(events, (now + pace[trial_id], counter, trial_id, epoch))
        counter += 1

    def next_job(now: float) -> None:
        for rung in reversed(rungs):
            points = np.array([values for _, values in records[rung]])
            if not len(points):
                continue
            top = promotion_slots(len(points), eta) if slots == "ceil" else int(len(points) // eta)
            for index in rank_order(points)[:top]:
                trial_id = records[rung][index][0]
                if trial_id not in promoted[rung]:
                    promoted[rung].add(trial_id)
                    run_epoch(now, trial_id, rung + 1)
                    return
        trial_id = f"t{len(configs):05d}"
        configs[trial_id] = searcher.suggest(trial_id)
        pace[trial_id] = float(rng.lognormal(0.0, 0.2))
        run_epoch(now, trial_id, 1)

    for _ in range(workers):
        next_job(0.0)
    while events and spent < budget:
        now, _, trial_id, epoch = heapq.heappop(events)
        spent += 1
        result = problem.report(configs[trial_id], epoch, rng)
        if epoch in records:
            values = np.array([result[metric] for metric, _ in OBJECTIVES])
            records[epoch].append((trial_id, values))
        elif epoch < problem.epochs:
            run_epoch(now, trial_id, epoch + 1)
            continue
        else:
            _tell(searcher, trial_id, result)
            trace.complete(spent, problem.target(configs[trial_id]), front_hv)
        if spent < budget:
            next_job(now)
    trace.trials = len(configs)
    trace.stopped = trace.trials - len(trace.front)  # paused at a rung when the budget ran out
    trace.wall_s = time.perf_counter() - began
    return trace


def _front_zero_only(points: np.ndarray, index: int, eta: float) -> bool:
    """Continue exactly when nothing recorded at the rung dominates the newcomer."""
    from tune_jobs._mo_ranking import non_dominated_fronts

    del eta
    return bool(non_dominated_fronts(np.asarray(points, dtype=float))[index] == 0)


def run_variants(selected: Sequence[Variant], seeds: Sequence[int], settings: Settings) -> str:
    """Each variant on ``seeds``, against no early stopping on the same seeds: epochs to match
    (mean curve and per-seed median), HV at 40 % and 100 %, trials, the share of them run to the
    last epoch, and how many had completed by 40 % of the epochs (means over the seeds)."""
    from unittest import mock

    import tune_jobs.schedulers

    budget = settings.budget
    grid = np.arange(0, budget + 1)
    front_hv = true_front_hypervolume(SyntheticCurricula(epochs=settings.epochs))

    def traces(variant: Variant) -> list[Trace]:
        problem = variant.problem(epochs=settings.epochs)
        loop = simulate
        if variant.promotion is not None:
            loop = functools.partial(simulate_promotion, slots=variant.promotion)
        rule = variant.rule or tune_jobs.schedulers.is_promoted
        with mock.patch.object(tune_jobs.schedulers, "is_promoted", rule):
            return [
                loop(
                    variant.method,
                    problem,
                    seed,
                    budget,
                    settings.workers,
                    variant.grace,
                    variant.eta,
                    front_hv,
                )
                for seed in seeds
            ]

    baseline = traces(Variant("none", method=METHODS[1]))
    goal = mean_curve(baseline, grid)[-1]
    header = ["variant", "match", "per seed", "HV @40%", "HV @100%", "trials", "full", "done @40%"]
    rows = [header]
    for variant in [None, *selected]:
        runs = baseline if variant is None else traces(variant)
        reach = epochs_to_reach(mean_curve(runs, grid), grid, goal)
        per_seed = statistics.median(seed_fractions(runs, baseline, budget))
        full = statistics.mean((run.trials - run.stopped) / max(run.trials, 1) for run in runs)
        done = statistics.mean(sum(t <= 0.4 * budget for t in run.epochs[1:]) for run in runs)
        rows.append(
            [
                "no early stopping (baseline)" if variant is None else variant.name,
                "never" if math.isnan(reach) else f"{reach / budget:.0%}",
                "never" if math.isinf(per_seed) else f"{per_seed:.0%}",
                _fmt([run.at(0.4 * budget) for run in runs]),
                _fmt([run.at(budget) for run in runs]),
                f"{statistics.mean(run.trials for run in runs):.0f}",
                f"{full:.0%}",
                f"{done:.1f}",
            ]
        )
        print("  ".join(rows[-1]), file=sys.stderr, flush=True)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(
        [f"seeds {seeds[0]}-{seeds[-1]}; no early stopping final HV {goal:.1f}", *lines]
    )


VALIDATED = (0, 6, 9, 10)  # indices into variants(): shipped, eps-net, HV contribution 0.1 and 1
BUDGETS = (  # --budgets: smaller and larger searches, and trials as long as the paper's
    Settings(trials=16),
    Settings(trials=32),
    Settings(trials=64, seeds=8),
    Settings(epochs=81, seeds=8),
    Settings(epochs=81, seeds=8, grace=3),
)


def run_budgets() -> str:
    """The main table's ``moasha``, ``none`` and random sampling rows at other budgets and trial
    lengths (``--budgets``)."""
    names = ("moasha", "none", "random", "random + moasha")
    methods = [method for method in METHODS if method.name in names]
    sections = []
    for settings in BUDGETS:
        heading = (
            f"{settings.trials} trials of {settings.epochs} epochs without early stopping = "
            f"{settings.budget} epochs, {settings.seeds} seeds, grace {settings.grace}"
        )
        sections.append(f"{heading}\n{table(settings, measure(settings, methods))}")
    return "\n\n".join(sections)


WORKER_COUNTS = (1, 2, 4, 8)  # --workers


def ideal_epochs(problem: SyntheticCurricula, goal: float, front_hv: float, seed: int) -> int:
    """Epochs an ideal serial scheduler spends to reach ``goal`` (% of the true front's HV):
    it screens random configs for one epoch each, knows their final values at once, and runs
    to the end only those a greedy hypervolume selection needs, once the screened configs'
    front reaches ``goal`` (an upper bound on the best possible: greedy need not be minimal)."""
    from tune_jobs._mo_ranking import non_dominated_fronts

    rng = np.random.default_rng(seed)
    log_lr = (math.log(0.005), math.log(0.2))
    values: list[np.ndarray] = []
    while True:
        config = {
            "theta_max": rng.uniform(0.0, 180.0),
            "eps_max": rng.uniform(0.0, 0.3),
            "schedule": SCHEDULES[rng.integers(len(SCHEDULES))],
            "start_frac": rng.uniform(),
            "lr": math.exp(rng.uniform(*log_lr)),
        }
        values.append(problem.target(config))
        points = np.array(values)
        front = list(np.flatnonzero(non_dominated_fronts(points) == 0))
        if 100.0 * hypervolume(points[front], REFERENCE) / front_hv >= goal:
            break
    chosen: list[int] = []
    while 100.0 * hypervolume(points[chosen], REFERENCE) / front_hv < goal:
        best = max(front, key=lambda i: hypervolume(points[[*chosen, i]], REFERENCE))
        chosen.append(best)
        front.remove(best)
    return len(values) + (problem.epochs - 1) * len(chosen)


def run_workers() -> str:
    """The shipped rule, noise-free curves and oracle rungs with 1 to 8 trials at a time
    (``--workers``): how much of the gap to the target is information and how much is
    parallelism (a trial promoted before later, better ones reach its rung); then what an
    ideal serial scheduler (:func:`ideal_epochs`) would need."""
    selected = [
        Variant("shipped rule"),
        Variant("noise-free curves", problem=NoiselessCurricula),
        Variant("oracle rungs", problem=OracleCurricula),
    ]
    sections = [
        f"{workers} workers\n{run_variants(selected, range(12), Settings(workers=workers))}"
        for workers in WORKER_COUNTS
    ]
    settings = Settings()
    problem = SyntheticCurricula(epochs=settings.epochs)
    front_hv = true_front_hypervolume(problem)
    baseline = measure(settings, [METHODS[1]])["none"]
    goal = mean_curve(baseline, np.array([settings.budget]))[-1]
    shares = [ideal_epochs(problem, goal, front_hv, seed) / settings.budget for seed in range(12)]
    sections.append(
        f"ideal serial scheduler (random configs, final values known after one epoch), to "
        f"reach {goal:.1f}: median {statistics.median(shares):.0%} of the epochs "
        f"(seeds 0-11: {min(shares):.0%}-{max(shares):.0%})"
    )
    return "\n\n".join(sections)


SAME_TRIALS = (  # --same-trials: trials per search, then the seed groups (main table, fresh)
    (32, (range(12), range(12, 48))),
    (64, (range(12), range(12, 48))),
)
SAME_TRIALS_PAIRS = (("random", "random + moasha"), ("none", "moasha"))  # (baseline, MO-ASHA)


@dataclass(frozen=True)
class SameTrials:
    """One seed of ``--same-trials``: no early stopping and MO-ASHA, each with ``N`` trials."""

    spent_share: float  # epochs MO-ASHA spent / N * epochs (no early stopping's)
    hv_none: float  # final HV, % of the true front's
    hv_moasha: float
    same_prefix: int  # how many of the first configs the two searches drew identically
    front: int  # no early stopping's front: Pareto-optimal (true values) among its N trials
    front_stopped: int | None  # of those, stopped early by MO-ASHA (None: configs differ)
    full: int  # MO-ASHA's trials run to their last epoch


def same_trials_seed(
    pair: Sequence[str], settings: Settings, seed: int, front_hv: float | None = None
) -> SameTrials:
    """No early stopping and MO-ASHA (``pair``: the two :data:`METHODS` names) with the same
    ``settings.trials`` trials each, on one seed: each runs until all its trials have ended.
    ``front_hv``: the true front's hypervolume (computed when not given)."""
    from tune_jobs._mo_ranking import non_dominated_fronts

    problem = SyntheticCurricula(epochs=settings.epochs)
    front_hv = front_hv or true_front_hypervolume(problem)
    base, ours = (
        simulate(
            next(method for method in METHODS if method.name == name),
            problem,
            seed,
            settings.budget,
            settings.workers,
            settings.grace,
            settings.eta,
            front_hv,
            max_trials=settings.trials,
        )
        for name in pair
    )
    n = settings.trials
    assert len(base.configs) == len(ours.configs) == n and all(base.full)
    assert ours.trials == n and ours.spent <= settings.budget  # every trial ended, none cut
    same = next((i for i in range(n) if base.configs[i] != ours.configs[i]), n)
    values = np.array([problem.target(config) for config in base.configs])
    front = np.flatnonzero(non_dominated_fronts(values) == 0)
    return SameTrials(
        spent_share=ours.spent / settings.budget,
        hv_none=base.hypervolume[-1],
        hv_moasha=ours.hypervolume[-1],
        same_prefix=same,
        front=len(front),
        front_stopped=sum(not ours.full[i] for i in front) if same == n else None,
        full=sum(ours.full),
    )


def run_same_trials() -> str:
    """Reading B of the target (``--same-trials``): no early stopping and MO-ASHA run the same
    number of trials ``N``; how many epochs MO-ASHA spends on them, against ``N * epochs``, and
    the final HV of each, paired by seed. With the random sampler both draw the same ``N``
    configs (checked), so MO-ASHA's loss is exactly the front members it stopped."""
    header = [
        "sampler",
        "seeds",
        "epochs",
        "HV no ES",
        "HV MO-ASHA",
        "diff +- se",
        ">=",
        "same",
        "front",
        "full",
    ]
    front_hv = true_front_hypervolume(SyntheticCurricula(epochs=Settings().epochs))
    sections = []
    for trials, groups in SAME_TRIALS:
        settings = Settings(trials=trials)
        rows = [header]
        for pair in SAME_TRIALS_PAIRS:
            by_seed = {
                seed: same_trials_seed(pair, settings, seed, front_hv)
                for seeds in groups
                for seed in seeds
            }
            for seeds in (*groups, range(groups[0][0], groups[-1][-1] + 1)):
                found = [by_seed[seed] for seed in seeds]
                share = [100 * f.spent_share for f in found]
                diff = [f.hv_moasha - f.hv_none for f in found]
                stopped = [f.front_stopped for f in found]
                rows.append(
                    [
                        "random" if pair[0] == "random" else "TPE",
                        f"{seeds[0]}-{seeds[-1]}",
                        f"{statistics.mean(share):.0f}% ({min(share):.0f}-{max(share):.0f}%)",
                        _fmt([f.hv_none for f in found]),
                        _fmt([f.hv_moasha for f in found]),
                        f"{statistics.mean(diff):+.1f} +- "
                        f"{statistics.stdev(diff) / math.sqrt(len(diff)):.1f}",
                        f"{sum(d >= 0 for d in diff)}/{len(diff)}",
                        f"{statistics.mean(f.same_prefix for f in found):.1f}",
                        "-"
                        if None in stopped
                        else f"{statistics.mean(stopped):.1f}/"
                        f"{statistics.mean(f.front for f in found):.1f}",
                        f"{statistics.mean(f.full for f in found):.1f}",
                    ]
                )
                print(f"N={trials}  " + "  ".join(rows[-1]), file=sys.stderr, flush=True)
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        heading = (
            f"N = {trials} trials each, no early stopping {settings.budget} epochs; "
            f"{settings.workers} workers, grace {settings.grace}, eta {settings.eta:g}"
        )
        sections.append("\n".join([heading, *lines]))
    return "\n\n".join(sections)


def main() -> int:
    """``python -m benchmarks.bench_moasha [--quick | --variants | --validate | --budgets |
    --promotion | --workers | --same-trials]``.

    ``--variants``: every entry of :func:`variants` on seeds 0-11 (6-8 min);
    ``--validate``: the shipped rule, eps-net and HV contribution on fresh seeds 12-47;
    ``--budgets``: the main comparison at 16, 32 and 64 trials' worth of epochs, and with
    81-epoch trials;
    ``--promotion``: ASHA's promotion type (pause and resume) on seeds 0-11;
    ``--workers``: the shipped rule, noise-free curves and oracle rungs with 1, 2, 4 and 8
    workers on seeds 0-11;
    ``--same-trials``: no early stopping and MO-ASHA with the same number of trials (32 and
    64), random sampler and TPE, on seeds 0-47.
    """
    studies = {
        "--variants": lambda: run_variants(variants(), range(12), Settings()),
        "--validate": lambda: run_variants(
            [variants()[i] for i in VALIDATED], range(12, 48), Settings()
        ),
        "--budgets": run_budgets,
        "--promotion": lambda: run_variants(promotion_variants(), range(12), Settings()),
        "--workers": run_workers,
        "--same-trials": run_same_trials,
    }
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_moasha",
        description="MO-ASHA against no early stopping on the synthetic problem; or one study.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="one small seed (seconds)")
    for flag in studies:
        group.add_argument(flag, action="store_true", help="the study of that name (see above)")
    args = parser.parse_args()
    chosen = [study for flag, study in studies.items() if getattr(args, flag[2:].replace("-", "_"))]
    if chosen:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        print(chosen[0]())
        return 0
    print(format_table(run(args.quick, "cpu")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
